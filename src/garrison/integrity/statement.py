"""The signed content of a model-signing signature: an in-toto v1 statement.

The predicate (``https://model_signing/signature/v1.0``) lists a digest per file or shard
(*resources*) and the *serialization* settings that produced them; its one subject carries the
SHA-256 over every resource digest, in order. :func:`statement_payload` writes the exact bytes that
get signed; :func:`parse_statement` reads them back as untrusted input, checking every field and
the subject digest. Garrison adds one predicate field, :data:`CHUNKS_FIELD`, which verifiers of the
v1.0 predicate ignore.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import InputError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: The pre-1.0 predicate; recognised only to say that it must be re-signed.
OLD_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
#: Garrison's addition to the predicate: content-defined chunk digests of dataset files. Verifiers
#: of the v1.0 predicate ignore fields they do not know, so model-signing still verifies it.
CHUNKS_FIELD = "garrison_chunks"
_DIGEST_LENGTHS = {"sha256": 64, "blake3": 64}
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_SHARD_RE = re.compile(r"^(?P<path>.+):(?P<start>\d+):(?P<end>\d+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """One signed digest: a file (``files``) or a byte range of one (``shards``)."""

    name: str
    """The resource name as signed: a POSIX path, ``path:start:end``, or ``.`` for a single file."""
    algorithm: str
    """``sha256`` or ``blake3``."""
    digest: str
    """Lower-case hex digest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """The signed content of a bundle, checked for shape and self-consistency."""

    name: str
    """The subject's name (the model directory's name when it was signed)."""
    root_digest: str
    """The subject's SHA-256 over all resource digests."""
    serialization: Mapping[str, Any]
    """The predicate's ``serialization`` block, as signed."""
    resources: tuple[Resource, ...]
    """Every signed digest, in signed order."""
    chunks: Mapping[str, Any]
    """Garrison's dataset chunk indexes by file path (empty when there are none)."""

    @property
    def method(self) -> str:
        """``files`` or ``shards``."""
        return str(self.serialization["method"])

    @property
    def hash_type(self) -> str:
        """The hash algorithm of every resource."""
        return str(self.serialization["hash_type"])

    @property
    def shard_size(self) -> int | None:
        """The shard size in bytes (shards only)."""
        value = self.serialization.get("shard_size")
        return None if value is None else int(value)

    @property
    def allow_symlinks(self) -> bool:
        """Whether links inside the tree were hashed under their own names."""
        return bool(self.serialization.get("allow_symlinks", False))

    @property
    def ignore_paths(self) -> tuple[str, ...]:
        """Paths that were left out when it was signed."""
        return tuple(str(p) for p in self.serialization.get("ignore_paths", ()))


def statement_payload(
    *,
    name: str,
    serialization: Mapping[str, Any],
    resources: Sequence[Mapping[str, str]],
    chunks: Mapping[str, Any] | None = None,
) -> bytes:
    """The in-toto statement for a manifest, as the exact bytes that get signed."""
    root = hashlib.sha256()
    for r in resources:
        root.update(bytes.fromhex(r["digest"]))
    predicate: dict[str, Any] = {"serialization": dict(serialization), "resources": list(resources)}
    if chunks:
        predicate[CHUNKS_FIELD] = dict(chunks)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(f"{where} is not a JSON object")
    if key not in data:
        raise InputError(f"{where}.{key} is missing")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise InputError(f"{where}.{key} must be {names}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_name(name: str, where: str) -> None:
    path = name
    match = _SHARD_RE.match(name)
    if match:
        path = match["path"]
        if int(match["start"]) > int(match["end"]):
            raise InputError(f"{where}: shard {name!r} ends before it starts")
    parts = path.split("/")
    if path != "." and (
        path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts)
    ):
        raise InputError(f"{where}: resource name {name!r} is not a relative path inside the model")


def _parse_serialization(serialization: Mapping[str, Any]) -> dict[str, Any]:
    method = json_field(serialization, "method", str, "predicate.serialization")
    hash_type = json_field(serialization, "hash_type", str, "predicate.serialization")
    if method not in ("files", "shards"):
        raise InputError(f"predicate.serialization.method {method!r} is not 'files' or 'shards'")
    if hash_type not in _DIGEST_LENGTHS:
        raise InputError(f"predicate.serialization.hash_type {hash_type!r} is not sha256 or blake3")
    if method == "shards":
        size = json_field(serialization, "shard_size", int, "predicate.serialization")
        if size <= 0:
            raise InputError(f"predicate.serialization.shard_size must be positive, got {size}")
    if not isinstance(serialization.get("allow_symlinks", False), bool):
        raise InputError("predicate.serialization.allow_symlinks must be true or false")
    ignore = serialization.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise InputError("predicate.serialization.ignore_paths must be a list of strings")
    return dict(serialization)


def _parse_resources(raw_resources: list[Any], serialization: Mapping[str, Any]) -> list[Resource]:
    hash_type = serialization["hash_type"]
    expected = hash_type
    if serialization["method"] == "shards":
        expected = f"{hash_type}-sharded-{serialization['shard_size']}"
    resources: list[Resource] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_resources):
        where = f"predicate.resources[{i}]"
        name = json_field(raw, "name", str, where)
        algorithm = json_field(raw, "algorithm", str, where)
        value = json_field(raw, "digest", str, where)
        if algorithm != expected:
            raise InputError(
                f"{where}: algorithm {algorithm!r} is not {expected!r}, as the serialization says"
            )
        if len(value) != _DIGEST_LENGTHS[hash_type] or not _HEX_RE.match(value):
            raise InputError(f"{where}: digest is not a lower-case hex {hash_type} digest")
        _check_name(name, where)
        if name in seen:
            raise InputError(f"{where}: resource {name!r} is listed twice")
        seen.add(name)
        resources.append(Resource(name=name, algorithm=algorithm, digest=value))
    return resources


def parse_statement(payload: bytes) -> Statement:
    """Check and decode an in-toto statement of the model-signing v1.0 predicate."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"signed payload is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError("signed payload is not a JSON object")
    if data.get("_type") != STATEMENT_TYPE:
        raise InputError(f"signed payload is not an in-toto v1 statement (_type {data.get('_type')!r})")
    predicate_type = data.get("predicateType")
    if predicate_type == OLD_PREDICATE_TYPE:
        raise InputError(
            "the signature uses the pre-1.0 model-signing predicate, which does not record how the "
            "model was serialized",
            hint="re-sign the model with model-signing 1.x or `garrison sign`",
        )
    if predicate_type != PREDICATE_TYPE:
        raise InputError(f"unknown predicate type {predicate_type!r}", hint=f"expected {PREDICATE_TYPE}")
    subjects = json_field(data, "subject", list, "statement")
    if len(subjects) != 1:
        raise InputError(f"statement.subject must hold one subject, found {len(subjects)}")
    subject = subjects[0]
    name = json_field(subject, "name", str, "statement.subject[0]")
    digest = json_field(
        json_field(subject, "digest", Mapping, "statement.subject[0]"), "sha256", str, "subject.digest"
    )
    predicate = json_field(data, "predicate", Mapping, "statement")
    serialization = _parse_serialization(json_field(predicate, "serialization", Mapping, "predicate"))
    resources = _parse_resources(json_field(predicate, "resources", list, "predicate"), serialization)
    root = hashlib.sha256()
    for r in resources:
        root.update(bytes.fromhex(r.digest))
    if root.hexdigest() != digest:
        raise InputError("statement is inconsistent: the subject digest does not match the listed resources")
    chunks = predicate.get(CHUNKS_FIELD, {})
    if not isinstance(chunks, Mapping):
        raise InputError(f"predicate.{CHUNKS_FIELD} must be a JSON object")
    return Statement(
        name=name,
        root_digest=digest,
        serialization=serialization,
        resources=tuple(resources),
        chunks=dict(chunks),
    )


__all__: Sequence[str] = [
    "CHUNKS_FIELD",
    "OLD_PREDICATE_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Resource",
    "Statement",
    "json_field",
    "parse_statement",
    "statement_payload",
]
