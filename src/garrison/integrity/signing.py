"""Sign a model or dataset, and verify it: manifests in the OpenSSF model-signing format.

:func:`sign_path` hashes a tree (:mod:`garrison.integrity.manifest`), adds content-defined chunk
digests for dataset files (:mod:`garrison.integrity.datasets`), and writes a model-signing bundle
(:mod:`garrison.integrity.bundle`). :func:`verify_path` checks the bundle's signature, rebuilds the
manifest with the settings the signature records, and says exactly what differs: which files
changed (and, for datasets, which rows), appeared or disappeared, and which paths could not be
hashed safely. :func:`verification_report` turns that into findings.

Signatures written here verify with ``model_signing verify key|certificate``; signatures written
by ``model_signing sign key|certificate`` verify here.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from garrison.core.errors import InputError, UsageError
from garrison.integrity.bundle import (
    SignatureError,
    Signer,
    Statement,
    Trust,
    read_bundle,
    statement_payload,
    verify_bundle,
)
from garrison.integrity.manifest import Algorithm, Manifest, Problem, build_manifest
from garrison.integrity.manifest_diff import FileChange, ManifestDiff

ChunkMode = Literal["auto", "always", "never"]
#: Dataset files at least this large get chunk digests under ``chunks="auto"``.
CHUNK_FROM_BYTES = 1 << 20
#: Formats (``garrison.formats`` ids) that get chunk digests.
DATASET_FORMATS = frozenset({"parquet", "csv", "jsonl", "text"})
_SHARD_RE = re.compile(r"^(?P<path>.+):(?P<start>\d+):(?P<end>\d+)$")


def default_signature_path(path: Path) -> Path:
    """``model/`` → ``model.sig`` beside it; ``data.csv`` → ``data.csv.sig``."""
    resolved = path.expanduser().absolute()
    return resolved.with_name(resolved.name + ".sig")


def _relative_inside(candidate: Path, root: Path) -> str | None:
    """``candidate``'s POSIX path relative to the directory ``root``, if it lies inside it."""
    try:
        rel = candidate.expanduser().resolve().relative_to(root.expanduser().resolve())
    except ValueError:
        return None
    return rel.as_posix() if root.is_dir() and str(rel) != "." else None


# ---------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True, kw_only=True)
class SignResult:
    """What :func:`sign_path` signed and where it wrote the signature."""

    signature: Path
    """The bundle written."""
    manifest: Manifest
    """The manifest that was signed."""
    signer: str
    """The key or certificate that signed."""
    chunked: tuple[str, ...]
    """Dataset files that got chunk digests."""
    notes: tuple[str, ...] = ()
    """Things the signer should know (row-level digests skipped for want of the ``data`` extra)."""


def sign_path(
    path: Path,
    signer: Signer,
    *,
    signature: Path | None = None,
    algorithm: Algorithm = "sha256",
    shard_size: int | None = None,
    ignore: Iterable[str] = (),
    allow_symlinks: bool = False,
    workers: int | None = None,
    chunks: ChunkMode = "auto",
) -> SignResult:
    """Hash ``path`` and write a signed manifest of it.

    Fails closed: a path that cannot be hashed safely (a link out of the tree, a special file, an
    unreadable file) is a :class:`UsageError` listing each one, rather than a signature that
    silently leaves it out. Ignore such paths explicitly with ``ignore``.
    """
    target = path.expanduser()
    out = signature or default_signature_path(target)
    extra = [rel] if (rel := _relative_inside(out, target)) else []
    result = build_manifest(
        target,
        algorithm=algorithm,
        shard_size=shard_size,
        ignore=[*ignore, *extra],
        workers=workers,
        allow_symlinks=allow_symlinks,
    )
    if result.problems:
        listed = "; ".join(f"{p.path}: {p.detail}" for p in result.problems[:10])
        more = f" (and {len(result.problems) - 10} more)" if len(result.problems) > 10 else ""
        raise UsageError(
            f"refusing to sign {path}: {len(result.problems)} path(s) cannot be hashed safely: "
            f"{listed}{more}",
            hint="fix them, or leave them out with --ignore PATH",
        )
    manifest = result.manifest
    indexes, notes = _chunk_indexes(target, manifest, algorithm, chunks)
    payload = statement_payload(
        name=manifest.name,
        serialization=manifest.serialization_parameters(),
        resources=manifest.resources(),
        chunks=indexes,
    )
    _write_atomic(out, signer.sign(payload))
    return SignResult(
        signature=out, manifest=manifest, signer=signer.describe(), chunked=tuple(indexes), notes=notes
    )


def _file_of(root: Path, manifest: Manifest, rel: str) -> Path:
    return root if manifest.single_file else root / rel


def _chunk_indexes(
    root: Path, manifest: Manifest, algorithm: Algorithm, mode: ChunkMode
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Chunk indexes of the dataset files, and a note when ``auto`` had to skip them."""
    if mode == "never":
        return {}, ()
    from garrison.core.errors import MissingExtraError
    from garrison.formats.identify import identify
    from garrison.formats.info import HEAD_BYTES
    from garrison.integrity.datasets import chunk_digests

    out: dict[str, Any] = {}
    for rel, size in manifest.file_sizes().items():
        if mode == "auto" and size < CHUNK_FROM_BYTES:
            continue
        file = _file_of(root, manifest, rel)
        try:
            with file.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError as exc:
            raise InputError(f"{file}: cannot be read: {exc.strerror or exc}") from None
        if identify(file, head, size).format not in DATASET_FORMATS:
            continue
        try:
            out[rel] = chunk_digests(file, algorithm=algorithm).to_dict()
        except MissingExtraError as exc:
            if mode == "always":
                raise
            note = f"row-level digests of dataset files skipped: {exc.message} ({exc.hint})"
            return {}, (note,)
    return out, ()


def _write_atomic(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write the signature {target}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """The outcome of checking a tree against a signature."""

    target: Path
    """What was verified."""
    signature: Path
    """The signature file."""
    signer: str | None = None
    """Who signed, when the signature verified."""
    failure: str | None = None
    """Why the signature itself did not verify (then nothing else was checked)."""
    statement: Statement | None = None
    """The signed statement, when the signature verified."""
    diff: ManifestDiff | None = None
    """Files changed, added and removed since signing."""
    problems: tuple[Problem, ...] = ()
    """Paths that could not be hashed safely now (links out of the tree, special files)."""
    rows: Mapping[str, str] = field(default_factory=dict)
    """For changed dataset files with chunk digests: which rows or row groups changed."""

    @property
    def ok(self) -> bool:
        """True only when the signature verified and nothing differs."""
        return self.failure is None and self.diff is not None and self.diff.is_empty and not self.problems


def read_signature(signature: Path) -> bytes:
    """The bytes of a signature file; :class:`UsageError` when it cannot be read."""
    from garrison.integrity.bundle import MAX_BUNDLE_BYTES

    try:
        with signature.expanduser().open("rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the signature {signature}: {exc.strerror or exc}") from None
    return data


def verify_path(
    path: Path,
    signature: Path,
    trust: Trust,
    *,
    workers: int | None = None,
    ignore: Iterable[str] = (),
) -> Verification:
    """Check ``signature`` against ``trust``, then ``path`` against the signed manifest.

    Never raises for a bad signature or a changed tree: those are the answer, in the returned
    :class:`Verification`; a missing ``path`` is every signed file removed. Raises
    :class:`UsageError` when ``signature`` cannot be read.
    """
    target = path.expanduser()
    data = read_signature(signature)
    try:
        statement, signer = verify_bundle(read_bundle(data, source=str(signature)), trust)
    except (SignatureError, InputError) as exc:
        return Verification(target=target, signature=signature, failure=exc.message)
    if not (target.exists() or target.is_symlink()):
        # The whole tree is gone (or was never there): every signed file is missing. For `watch`
        # that is the change to report, not a reason to stop.
        gone = _empty_manifest(target, statement)
        return Verification(
            target=target,
            signature=signature,
            signer=signer,
            statement=statement,
            diff=diff_resources(statement, gone),
        )
    extra = [rel] if (rel := _relative_inside(signature, target)) else []
    current = build_manifest(
        target,
        algorithm=cast(Algorithm, statement.hash_type),
        shard_size=statement.shard_size if statement.method == "shards" else None,
        ignore=[*statement.ignore_paths, *ignore, *extra],
        workers=workers,
        allow_symlinks=statement.allow_symlinks,
        default_ignores=False,
    )
    manifest = current.manifest
    diff = diff_resources(statement, manifest)
    rows = _row_changes(target, manifest, statement, diff)
    return Verification(
        target=target,
        signature=signature,
        signer=signer,
        statement=statement,
        diff=diff,
        problems=current.problems,
        rows=rows,
    )


def _empty_manifest(target: Path, statement: Statement) -> Manifest:
    single = any(r.name == "." or r.name.startswith(".:") for r in statement.resources)
    return Manifest(
        name=target.name,
        algorithm=cast(Algorithm, statement.hash_type),
        mode="shards" if statement.method == "shards" else "files",
        shard_size=statement.shard_size,
        allow_symlinks=statement.allow_symlinks,
        ignore=statement.ignore_paths,
        single_file=single,
        entries=(),
    )


def _split(name: str, single: str | None) -> tuple[str, tuple[int, int] | None]:
    match = _SHARD_RE.match(name)
    path, span = (match["path"], (int(match["start"]), int(match["end"]))) if match else (name, None)
    if path == "." and single is not None:
        path = single
    return path, span


def diff_resources(statement: Statement, current: Manifest) -> ManifestDiff:
    """Files changed, added and removed between a signed statement and a manifest built now."""
    single = current.name if current.single_file else None
    signed: dict[str, dict[tuple[int, int] | None, str]] = {}
    for r in statement.resources:
        p, span = _split(r.name, single)
        signed.setdefault(p, {})[span] = r.digest
    now: dict[str, dict[tuple[int, int] | None, str]] = {}
    for res in current.resources():
        p, span = _split(res["name"], single)
        now.setdefault(p, {})[span] = res["digest"]
    sizes = current.file_sizes()
    for p, size in sizes.items():  # empty files have no shard resource, in either manifest
        if size == 0 and statement.method == "shards":
            now.setdefault(p, {})
    changed: list[FileChange] = []
    unchanged = 0
    for p in _order(signed.keys() & now.keys()):
        a, b = signed[p], now[p]
        if a == b:
            unchanged += 1
            continue
        spans = [s for s in a.keys() | b.keys() if s is not None and a.get(s) != b.get(s)]
        old_size = max((s[1] for s in a if s is not None), default=-1) if statement.method == "shards" else -1
        changed.append(FileChange(path=p, old_size=old_size, new_size=sizes.get(p, 0), ranges=_merge(spans)))
    return ManifestDiff(
        changed=tuple(changed),
        added=_order(now.keys() - signed.keys()),
        removed=_order(signed.keys() - now.keys()),
        unchanged=unchanged,
    )


def _order(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(paths, key=lambda s: tuple(s.split("/"))))


def _merge(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return tuple(merged)


def _row_changes(root: Path, manifest: Manifest, statement: Statement, diff: ManifestDiff) -> dict[str, str]:
    if not statement.chunks:
        return {}
    from garrison.integrity.datasets import ChunkIndex, render_chunk_diff, verify_chunks

    out: dict[str, str] = {}
    for change in diff.changed:
        raw = statement.chunks.get(change.path)
        if raw is None:
            continue
        try:
            old = ChunkIndex.from_dict(raw)
            out[change.path] = render_chunk_diff(verify_chunks(old, _file_of(root, manifest, change.path)))
        except (InputError, UsageError) as exc:
            out[change.path] = f"rows could not be compared: {exc.message}"
    return out


__all__: Sequence[str] = [
    "CHUNK_FROM_BYTES",
    "DATASET_FORMATS",
    "ChunkMode",
    "SignResult",
    "Verification",
    "default_signature_path",
    "diff_resources",
    "read_signature",
    "sign_path",
    "verify_path",
]
