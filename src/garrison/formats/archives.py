"""Archives: zip and the formats built on it (PyTorch, TorchScript, npz, Keras v3), and tar.

The zip central directory is parsed here, within a byte budget, rather than through
:mod:`zipfile`, which reads a directory of any size into memory. Nothing is extracted; a member's
first bytes are decompressed (bounded) only to read a NumPy header or a Keras config.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from garrison.core.errors import GarrisonError
from garrison.formats.info import Identification
from garrison.formats.source import Source
from garrison.formats.tensors import npy_header

CENTRAL_DIRECTORY_BUDGET = 2 * 2**20
"""Most central-directory bytes parsed; members listed beyond that are not looked at."""

MEMBER_PREFIX = 64 * 1024
"""Most decompressed bytes read from one member."""

MAX_NPZ_MEMBERS = 64
"""Most npz members whose NumPy header is read."""

MAX_TAR_MEMBERS = 1000
"""Most tar headers walked."""

_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Member:
    name: str
    method: int
    compressed: int
    header_offset: int


class _BrokenZipError(Exception):
    """The central directory could not be read."""


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _zip64_values(extra: bytes, wanted: list[bool]) -> list[int]:
    """Values of the zip64 extra field (id 1) for the fields marked as overflowing."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4 : pos + 4 + length]
            values = [int.from_bytes(body[i : i + 8], "little") for i in range(0, len(body) - 7, 8)]
            return values[: sum(wanted)]
        pos += 4 + length
    return []


def _central_directory(src: Source) -> tuple[list[_Member], int, bool]:
    """Members, the offset the archive starts at (prepended bytes), and whether the list is partial."""
    tail = src.tail(min(src.size, 22 + 65535))
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < 22:
        raise _BrokenZipError("no end of central directory record (truncated or not a complete zip)")
    eocd = src.size - len(tail) + pos
    entries, cd_size, cd_offset = struct.unpack_from("<10xHII", tail, pos)
    cd_end = eocd
    # A zip64 locator may precede the record even when no field overflows (PyTorch always writes one).
    locator = src.read_at(eocd - 20, 20) if eocd >= 76 else b""
    if locator.startswith(b"PK\x06\x07"):
        record = src.read_at(eocd - 76, 56)
        if not record.startswith(b"PK\x06\x06"):  # extensible data after it: follow the locator
            record = src.read_at(struct.unpack_from("<Q", locator, 8)[0], 56)
        if not (record.startswith(b"PK\x06\x06") and len(record) == 56):
            raise _BrokenZipError("zip64 end of central directory record is missing")
        entries, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
        cd_end = eocd - 76
    elif entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        raise _BrokenZipError("zip64 end of central directory locator is missing")
    cd_start = cd_end - cd_size
    prefix = cd_start - cd_offset
    if cd_start < 0 or prefix < 0:
        raise _BrokenZipError("central directory offset points outside the file")
    partial = cd_size > CENTRAL_DIRECTORY_BUDGET
    cd = src.read_at(cd_start, min(cd_size, CENTRAL_DIRECTORY_BUDGET))
    members: list[_Member] = []
    off = 0
    while len(members) < entries and off + 46 <= len(cd):
        if cd[off : off + 4] != _CENTRAL:
            raise _BrokenZipError(f"broken central directory at entry {len(members)}")
        method, compressed, size, n, m, k = struct.unpack_from("<H8xIIHHH", cd, off + 10)
        header_offset = struct.unpack_from("<I", cd, off + 42)[0]
        name = _decode(cd[off + 46 : off + 46 + n])
        extra = cd[off + 46 + n : off + 46 + n + m]
        overflow = [size == 0xFFFFFFFF, compressed == 0xFFFFFFFF, header_offset == 0xFFFFFFFF]
        values = _zip64_values(extra, overflow) if any(overflow) else []
        for index, flag in enumerate(overflow):
            if flag and values:
                value = values.pop(0)
                if index == 1:
                    compressed = value
                elif index == 2:
                    header_offset = value
        members.append(_Member(name=name, method=method, compressed=compressed, header_offset=header_offset))
        off += 46 + n + m + k
    if len(members) < entries and not partial:
        raise _BrokenZipError(f"central directory lists {entries} members but holds {len(members)}")
    return members, prefix, partial


def _local_names(head: bytes) -> list[str]:
    """Member names from the local headers at the start of a zip whose directory is unreadable."""
    names: list[str] = []
    off = 0
    while off + 30 <= len(head) and head[off : off + 4] == _LOCAL and len(names) < 1000:
        flags, compressed, n, m = struct.unpack_from("<6xH10xI4xHH", head, off)
        names.append(_decode(head[off + 30 : off + 30 + n]))
        if flags & 0x08 and compressed == 0:
            break
        off += 30 + n + m + compressed
    return names


def _member_prefix(src: Source, member: _Member, prefix: int) -> bytes | None:
    """The first :data:`MEMBER_PREFIX` bytes of a stored or deflated member, or ``None``."""
    local = src.read_at(prefix + member.header_offset, 30)
    if len(local) < 30 or not local.startswith(_LOCAL):
        return None
    n, m = struct.unpack_from("<HH", local, 26)
    start = prefix + member.header_offset + 30 + n + m
    if member.method == 0:
        return src.read_at(start, min(member.compressed, MEMBER_PREFIX))
    if member.method == 8:
        raw = src.read_at(start, min(member.compressed, MEMBER_PREFIX))
        try:
            return zlib.decompressobj(-15).decompress(raw, MEMBER_PREFIX)
        except zlib.error:
            return None
    return None


def _classify_zip(names: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    base = {name.rsplit("/", 1)[-1] for name in names}
    if "constants.pkl" in base and any(name.startswith("code/") or "/code/" in name for name in names):
        return "torchscript", ()
    data_pkl = [name for name in names if name.count("/") == 1 and name.endswith("/data.pkl")]
    if data_pkl:
        return "pytorch-zip", (("pickle", data_pkl[0]),)
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras-v3", ()
    if names and all(name.endswith(".npy") for name in names):
        return "numpy-npz", ()
    return "zip", ()


def sniff_zip(src: Source, *, require_magic: bool = True) -> Identification | None:
    """Identify a zip archive and the model format built on it."""
    if require_magic and not src.head.startswith((_LOCAL, _EOCD)):
        return None
    try:
        members, prefix, partial = _central_directory(src)
    except _BrokenZipError as exc:
        if not require_magic:
            return None
        fmt, found = _classify_zip(_local_names(src.head))
        return Identification(format=fmt, details=found, malformed=str(exc))
    except GarrisonError:
        return None if not require_magic else Identification(format="zip", details=(("listing", "unread"),))
    if not require_magic and not members:
        return None
    fmt, extra = _classify_zip([m.name for m in members])
    details = [("members", str(len(members)) + ("+" if partial else "")), *extra]
    if prefix:
        details.append(("prefix-bytes", str(prefix)))
    try:
        if fmt == "numpy-npz":
            objects = 0
            for member in members[:MAX_NPZ_MEMBERS]:
                data = _member_prefix(src, member, prefix)
                parsed = npy_header(data) if data else None
                objects += bool(parsed and parsed.objects)
            if objects:
                fmt = "numpy-npz-object"
                details.append(("object-arrays", str(objects)))
        elif fmt == "keras-v3":
            config = next(m for m in members if m.name == "config.json")
            data = _member_prefix(src, config, prefix) or b""
            details.append(("lambda", "yes" if b'"Lambda"' in data else "no"))
    except GarrisonError:
        details.append(("members-checked", "partly: read budget spent"))
    return Identification(format=fmt, details=tuple(details))


def _octal(field: bytes) -> int | None:
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" \x00")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return None


def is_tar_header(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header with a correct checksum."""
    if len(block) < 512 or block[0] == 0:
        return False
    stored = _octal(block[148:156])
    if stored is None:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:512] if b >= 128)
    return stored in (unsigned, signed)


def sniff_tar(src: Source) -> Identification | None:
    """Identify a tar archive (and the legacy PyTorch tar layout) by walking its headers."""
    if src.size < 512 or not is_tar_header(src.head[:512]):
        return None
    names: list[str] = []
    off = 0
    malformed = None
    broken_at: int | None = None
    try:
        while off + 512 <= src.size and len(names) < MAX_TAR_MEMBERS:
            block = src.read_at(off, 512)
            if block.count(0) == 512:
                break
            if not is_tar_header(block):
                malformed = f"broken tar header at byte {off}"
                broken_at = off
                break
            length = _octal(block[124:136]) or 0
            if block[156:157] not in (b"x", b"g", b"L", b"K"):
                names.append(_decode(block[:100].split(b"\x00", 1)[0]))
            off += 512 + -(-length // 512) * 512
            if off > src.size:
                malformed = f"member {names[-1] if names else '?'!r} extends past the end of the file"
    except GarrisonError:
        pass
    details: tuple[tuple[str, str], ...] = (("members", str(len(names))),)
    if broken_at is not None:
        details = (*details, ("malformed-range", f"{broken_at}:{broken_at + 512}"))
    if {"storages", "tensors", "pickle"} <= set(names):
        return Identification(
            format="pytorch-legacy", details=(("layout", "tar"), *details), malformed=malformed
        )
    return Identification(format="tar", details=details, malformed=malformed)
