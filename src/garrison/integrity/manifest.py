"""Manifests: a digest for every file, or every shard of a file, of a model or dataset.

A manifest maps onto the OpenSSF model-signing (``model_signing`` 1.x) in-toto predicate:

- each entry is one *resource*; its name is the POSIX path relative to the model root
  (``files`` mode) or ``path:start:end`` with ``end`` exclusive (``shards`` mode); a model that is
  a single file has the one resource ``.``;
- resources are ordered by path components, then start, then end, as model-signing sorts them;
- the *serialization* block records the method (``files`` | ``shards``), the ``hash_type``, the
  ``shard_size`` (shards only), ``allow_symlinks`` and the ignored paths (when there are any);
- model-signing lists no shard for an empty file; we keep a ``path:0:0`` entry so that an empty
  file appearing or disappearing shows in a comparison (``manifest_diff.compare``), and leave it
  out of the resources;
- the subject digest is SHA-256 over the raw bytes of every resource digest in that order
  (:meth:`Manifest.root_digest`).

Links are never followed out of the tree: a link that leaves it, dangles, names a directory, or
(with ``allow_symlinks=False``, model-signing's default) names a file inside it is a
:class:`Problem`, never hashed. Special files and unreadable files are problems too.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Literal, Protocol, cast

from garrison.core.errors import InputError, MissingExtraError, UsageError
from garrison.core.text import visible

Algorithm = Literal["sha256", "blake3"]
Mode = Literal["files", "shards"]

#: Version tag of the serialized form written by :meth:`Manifest.to_dict`.
FORMAT = "garrison-manifest/1"
#: Paths model-signing ignores by default (``ignore_git_paths=True``), relative to the root.
DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
#: model-signing's default shard size (1 GB, decimal).
DEFAULT_SHARD_SIZE = 1_000_000_000
_CHUNK = 1 << 20  # bytes per read into the reused per-thread buffer
_ALGORITHMS: tuple[str, ...] = ("sha256", "blake3")


class ProblemKind(StrEnum):
    """Why a path under the root was not hashed."""

    SYMLINK_ESCAPES = "symlink-escapes-tree"
    SYMLINK_NOT_ALLOWED = "symlink-not-allowed"
    SYMLINK_TO_DIRECTORY = "symlink-to-directory"
    DANGLING_SYMLINK = "dangling-symlink"
    SPECIAL_FILE = "special-file"
    UNREADABLE = "unreadable"
    CHANGED_WHILE_HASHING = "changed-while-hashing"
    NAME_NOT_UTF8 = "name-not-utf-8"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """A path that is not in the manifest, and why (a finding to be)."""

    path: str
    """POSIX path relative to the root."""
    kind: ProblemKind
    """What is wrong with it."""
    detail: str
    """One line a user can act on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """The digest of one file (``files`` mode) or one byte range of a file (``shards`` mode)."""

    path: str
    """POSIX path relative to the root."""
    digest: str
    """Lower-case hex digest."""
    size: int
    """Bytes covered by this entry: the file size, or ``end - start`` for a shard."""
    start: int | None = None
    """First byte of the shard (shards mode only)."""
    end: int | None = None
    """One past the last byte of the shard (shards mode only)."""

    @property
    def resource_name(self) -> str:
        """The model-signing resource name: ``path`` or ``path:start:end``."""
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}:{self.end}"

    def sort_key(self) -> tuple[tuple[str, ...], int, int]:
        """Order of entries: path components, then start, then end."""
        return (tuple(self.path.split("/")), self.start or 0, self.end or 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Digests of every file or shard under a root, with the settings that produced them."""

    name: str
    """Last component of the root (informative only; not part of the identity of the content)."""
    algorithm: Algorithm
    """Hash algorithm of every entry."""
    mode: Mode
    """``files``: one digest per file; ``shards``: one per ``shard_size`` byte range."""
    shard_size: int | None
    """Shard size in bytes (shards mode), else ``None``."""
    allow_symlinks: bool
    """Whether links to files inside the tree were hashed under the link's name."""
    ignore: tuple[str, ...]
    """Ignore patterns in force (defaults included), as given."""
    single_file: bool
    """The root is one file (its entry is named after it; its model-signing resource is ``.``)."""
    entries: tuple[ManifestEntry, ...]
    """Entries in canonical order (see :meth:`ManifestEntry.sort_key`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reverses it."""
        return {
            "format": FORMAT,
            "name": self.name,
            "algorithm": self.algorithm,
            "mode": self.mode,
            "shard_size": self.shard_size,
            "allow_symlinks": self.allow_symlinks,
            "ignore": list(self.ignore),
            "single_file": self.single_file,
            "entries": [e.to_dict() for e in self.entries],
        }

    def to_json(self) -> bytes:
        """Canonical UTF-8 JSON: sorted keys, no insignificant white space."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def digest(self) -> str:
        """SHA-256 hex of :meth:`to_json`."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Rebuild a manifest from :meth:`to_dict` output; :class:`InputError` if malformed."""
        try:
            if data["format"] != FORMAT:
                raise InputError(f"unknown manifest format {data['format']!r}", hint=f"expected {FORMAT}")
            algorithm, mode = data["algorithm"], data["mode"]
            if algorithm not in _ALGORITHMS or mode not in ("files", "shards"):
                raise InputError(f"manifest has unknown algorithm {algorithm!r} or mode {mode!r}")
            entries = tuple(
                ManifestEntry(
                    path=str(e["path"]),
                    digest=str(e["digest"]),
                    size=int(e["size"]),
                    start=None if e["start"] is None else int(e["start"]),
                    end=None if e["end"] is None else int(e["end"]),
                )
                for e in data["entries"]
            )
            shard_size = data["shard_size"]
            return cls(
                name=str(data["name"]),
                algorithm=cast(Algorithm, algorithm),
                mode=cast(Mode, mode),
                shard_size=None if shard_size is None else int(shard_size),
                allow_symlinks=bool(data["allow_symlinks"]),
                ignore=tuple(str(p) for p in data["ignore"]),
                single_file=bool(data["single_file"]),
                entries=tuple(sorted(entries, key=ManifestEntry.sort_key)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed manifest: {exc!r}") from exc

    def file_sizes(self) -> dict[str, int]:
        """Size of every file in the manifest, by path."""
        sizes: dict[str, int] = {}
        for e in self.entries:
            sizes[e.path] = sizes.get(e.path, 0) + e.size
        return sizes

    def serialization_parameters(self) -> dict[str, Any]:
        """The model-signing predicate's ``serialization`` block."""
        params: dict[str, Any] = {
            "method": self.mode,
            "hash_type": self.algorithm,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.ignore:
            params["ignore_paths"] = sorted(self.ignore)
        if self.mode == "shards":
            params["shard_size"] = self.shard_size
        return params

    def resources(self) -> list[dict[str, str]]:
        """The model-signing predicate's ``resources`` list, in canonical order."""
        # model-signing names a shard's algorithm after the shard size: "sha256-sharded-1000000000"
        algorithm = self.algorithm if self.mode == "files" else f"{self.algorithm}-sharded-{self.shard_size}"
        out = []
        for e in self.entries:
            if e.start is not None and e.size == 0:
                continue  # model-signing lists no shard for an empty file
            name = "." + e.resource_name[len(e.path) :] if self.single_file else e.resource_name
            out.append({"name": name, "algorithm": algorithm, "digest": e.digest})
        return out

    def root_digest(self) -> str:
        """The in-toto subject digest: SHA-256 over the raw bytes of every resource digest, in order."""
        h = hashlib.sha256()
        for r in self.resources():
            h.update(bytes.fromhex(r["digest"]))
        return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestResult:
    """A manifest and the paths that were left out of it."""

    manifest: Manifest
    """Digests of everything that could be hashed safely."""
    problems: tuple[Problem, ...]
    """Paths not hashed, sorted by path."""


# ---------------------------------------------------------------- hashing


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def _hasher_factory(algorithm: str) -> Callable[[bool], _Hasher]:
    if algorithm == "sha256":
        return lambda _multi: hashlib.sha256()
    if algorithm == "blake3":
        try:
            import blake3
        except ImportError as exc:
            raise MissingExtraError("BLAKE3 manifests", extra="blake3", module="blake3") from exc
        return lambda multi: cast(_Hasher, blake3.blake3(max_threads=blake3.blake3.AUTO if multi else 1))
    raise UsageError(f"unknown hash algorithm {algorithm!r}", hint="use sha256 or blake3")


@dataclass(frozen=True, slots=True)
class _Task:
    rel: str
    full: str
    start: int
    end: int | None  # None: to the end of the file (files mode)


_local = threading.local()


def _buffer() -> memoryview:
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = memoryview(bytearray(_CHUNK))
        _local.buf = buf
    return cast(memoryview, buf)


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _hash_task(task: _Task, new: Callable[[bool], _Hasher], multi: bool) -> tuple[str, int] | Problem:
    """Digest and byte count of one task, or the problem that stopped it."""
    try:
        fd = os.open(task.full, _OPEN_FLAGS)
    except OSError as exc:
        return Problem(path=task.rel, kind=ProblemKind.UNREADABLE, detail=f"cannot open: {exc.strerror}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return Problem(
                path=task.rel, kind=ProblemKind.SPECIAL_FILE, detail="not a regular file when opened"
            )
        h, buf, pos = new(multi), _buffer(), task.start
        while task.end is None or pos < task.end:
            want = _CHUNK if task.end is None else min(_CHUNK, task.end - pos)
            n = os.preadv(fd, [buf[:want]], pos)
            if n == 0:
                break
            h.update(buf[:n])
            pos += n
        if task.end is not None and pos != task.end:
            return Problem(
                path=task.rel,
                kind=ProblemKind.CHANGED_WHILE_HASHING,
                detail="file shrank while it was hashed",
            )
        return h.hexdigest(), pos - task.start
    except OSError as exc:
        return Problem(path=task.rel, kind=ProblemKind.UNREADABLE, detail=f"read failed: {exc.strerror}")
    finally:
        os.close(fd)


# ---------------------------------------------------------------- walking


def _ignored(rel: str, patterns: Sequence[str]) -> bool:
    """True when ``rel`` or one of its ancestors equals or matches (``fnmatch``) a pattern."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(p == pat or fnmatchcase(p, pat) for p in prefixes for pat in patterns)


def _normalize_pattern(pattern: str) -> str:
    """``./weights/`` -> ``weights``: patterns are relative to the root, without a trailing slash."""
    pattern = pattern.replace(os.sep, "/")
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk(
    root: str, real_root: str, patterns: Sequence[str], allow_symlinks: bool
) -> tuple[list[tuple[str, str, int]], list[Problem]]:
    """Files to hash as (relative path, path to open, size), and problems. Never follows links."""
    files: list[tuple[str, str, int]] = []
    problems: list[Problem] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append(
                Problem(path=rel_dir or ".", kind=ProblemKind.UNREADABLE, detail=str(exc.strerror))
            )
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if _ignored(rel, patterns):
                continue
            if not _is_utf8(entry.name):  # bytes Python decoded with surrogateescape
                problems.append(
                    Problem(
                        path=visible(rel),
                        kind=ProblemKind.NAME_NOT_UTF8,
                        detail="name is not UTF-8, and a manifest holds names as UTF-8 text; rename it",
                    )
                )
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append(Problem(path=rel, kind=ProblemKind.UNREADABLE, detail=str(exc.strerror)))
                continue
            if stat.S_ISLNK(st.st_mode):
                item = _classify_link(entry.path, rel, real_root, allow_symlinks)
                if isinstance(item, Problem):
                    problems.append(item)
                else:
                    files.append(item)
            elif stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                files.append((rel, entry.path, st.st_size))
            else:
                problems.append(Problem(path=rel, kind=ProblemKind.SPECIAL_FILE, detail="not a regular file"))
    return files, problems


def _classify_link(full: str, rel: str, real_root: str, allow: bool) -> tuple[str, str, int] | Problem:
    """Resolve a link by name only (``realpath`` reads links, never file contents)."""
    target = os.path.realpath(full)
    if not _within(target, real_root):
        return Problem(
            path=rel, kind=ProblemKind.SYMLINK_ESCAPES, detail="link points outside the tree; not followed"
        )
    try:
        st = os.stat(target, follow_symlinks=False)
    except OSError:
        return Problem(path=rel, kind=ProblemKind.DANGLING_SYMLINK, detail="link target does not exist")
    if stat.S_ISDIR(st.st_mode):
        return Problem(
            path=rel, kind=ProblemKind.SYMLINK_TO_DIRECTORY, detail="link to a directory; not followed"
        )
    if not stat.S_ISREG(st.st_mode):
        return Problem(path=rel, kind=ProblemKind.SPECIAL_FILE, detail="link to a special file")
    if not allow:
        return Problem(
            path=rel,
            kind=ProblemKind.SYMLINK_NOT_ALLOWED,
            detail="link inside the tree; allow_symlinks is off",
        )
    return rel, target, st.st_size


# ---------------------------------------------------------------- building


def build_manifest(
    path: str | os.PathLike[str],
    *,
    algorithm: Algorithm = "sha256",
    shard_size: int | None = None,
    ignore: Iterable[str] = (),
    workers: int | None = None,
    allow_symlinks: bool = False,
    default_ignores: bool = True,
) -> ManifestResult:
    """Hash every file under ``path`` (a directory, or a single file).

    ``shard_size=None`` hashes whole files (files are spread over the workers); an int splits
    every file into ``shard_size`` byte ranges hashed in parallel. ``ignore`` adds root-relative
    paths or fnmatch patterns, matched against each file's POSIX path and each of its ancestors
    (so a directory ignores everything below it), to :data:`DEFAULT_IGNORES` (unless
    ``default_ignores=False``). ``workers`` defaults to the number of CPUs.

    Raises :class:`UsageError` for a missing root or bad arguments, and
    :class:`MissingExtraError` for BLAKE3 without the ``blake3`` extra.
    """
    new = _hasher_factory(algorithm)
    if shard_size is not None and shard_size <= 0:
        raise UsageError(f"shard size must be positive, got {shard_size}")
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    wanted = (*DEFAULT_IGNORES, *ignore) if default_ignores else tuple(ignore)
    patterns = tuple(dict.fromkeys(p for p in map(_normalize_pattern, wanted) if p))
    root = os.fspath(path)
    # An explicit root that is a link is followed (the caller chose it); links below it are not.
    real_root = os.path.realpath(root)
    name = visible(os.path.basename(os.path.abspath(root)) or os.path.basename(real_root))
    single = os.path.isfile(real_root)
    if os.path.isdir(real_root):
        files, problems = _walk(real_root, real_root, patterns, allow_symlinks)
    elif single:
        files, problems = [(name, real_root, os.stat(real_root).st_size)], []
    else:
        raise UsageError(f"{root}: no such file or directory, or not a regular file")

    tasks: list[_Task] = []
    for rel, full, size in files:
        if shard_size is None:
            tasks.append(_Task(rel, full, 0, None))
        else:
            bounds = range(0, size, shard_size) if size else range(1)
            tasks.extend(_Task(rel, full, s, min(s + shard_size, size)) for s in bounds)
    # Largest first keeps the pool busy to the end; the output order is fixed by sorting later.
    sizes = {rel: size for rel, _, size in files}
    tasks.sort(key=lambda t: (-((t.end - t.start) if t.end is not None else sizes[t.rel]), t.rel, t.start))
    multi = algorithm == "blake3" and len(tasks) < n_workers
    if n_workers == 1 or len(tasks) <= 1:
        results = [_hash_task(t, new, multi) for t in tasks]
    else:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="garrison-hash") as pool:
            results = list(pool.map(lambda t: _hash_task(t, new, multi), tasks))

    entries: list[ManifestEntry] = []
    failed: dict[str, Problem] = {}
    for task, res in zip(tasks, results, strict=True):
        if isinstance(res, Problem):
            failed.setdefault(task.rel, res)
            continue
        digest, n = res
        sharded = shard_size is not None
        entries.append(
            ManifestEntry(
                path=task.rel,
                digest=digest,
                size=n,
                start=task.start if sharded else None,
                end=task.start + n if sharded else None,
            )
        )
    entries = [e for e in entries if e.path not in failed]
    problems.extend(failed.values())
    manifest = Manifest(
        name=name,
        algorithm=algorithm,
        mode="files" if shard_size is None else "shards",
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore=patterns,
        single_file=single,
        entries=tuple(sorted(entries, key=ManifestEntry.sort_key)),
    )
    return ManifestResult(manifest=manifest, problems=tuple(sorted(problems, key=lambda p: (p.path, p.kind))))


__all__ = [
    "DEFAULT_IGNORES",
    "DEFAULT_SHARD_SIZE",
    "FORMAT",
    "Algorithm",
    "Manifest",
    "ManifestEntry",
    "ManifestResult",
    "Mode",
    "Problem",
    "ProblemKind",
    "build_manifest",
]
