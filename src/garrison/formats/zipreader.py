"""A minimal zip reader that reads what a given loader would read, and notices where views differ.

Python's :mod:`zipfile` is one loader's view of a zip; PyTorch's (miniz, in
``caffe2/serialize/inline_container.cc``) is another, and attackers live in the gap between them.
This reader parses the end-of-central-directory record (zip64 too), the central directory and,
per member, the local header, and extracts stored or deflated data with bounded output. It does
not verify CRCs on its own; it reports them, so a caller can say what each loader would do.

``base`` selects the view of offsets: ``0`` reads offsets as absolute positions in the file (miniz,
hence ``torch.load``); ``directory.prefix`` shifts them by the bytes found before the archive
(Python's zipfile, hence ``numpy.load`` and most tools).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from garrison.core.errors import InputError, ResourceLimitError
from garrison.formats.streams import MAX_RATIO, decode_stream

EOCD_SIG = b"PK\x05\x06"
CENTRAL_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"

FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_PATCH = 0x0020
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_DIRECTORY = 0x2000
UNREADABLE_FLAGS = FLAG_ENCRYPTED | FLAG_PATCH | FLAG_STRONG_ENCRYPTION
"""Flag bits with which neither miniz nor Python's zipfile hands out a member's plain bytes."""

MAX_ENTRIES = 100_000
"""Most central-directory entries parsed."""

MAX_DIRECTORY_BYTES = 64 * 2**20
"""Largest central directory parsed."""

_CHUNK = 1 << 20


class ZipFormatError(InputError):
    """The archive's structure cannot be read."""


class ByteSource(Protocol):
    """Random access to a file's bytes."""

    @property
    def size(self) -> int:
        """Total length in bytes."""

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end)."""


class FileSource:
    """A :class:`ByteSource` over an open binary file that counts the bytes it reads."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._handle = handle
        self._size = size
        self.bytes_read = 0
        """Bytes read so far (tests use it to prove storages are skipped)."""

    @property
    def size(self) -> int:
        """Total length in bytes."""
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``."""
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        self._handle.seek(offset)
        data = self._handle.read(min(length, self._size - offset))
        self.bytes_read += len(data)
        return data


class BytesSource:
    """A :class:`ByteSource` over bytes already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        """Total length in bytes."""
        return len(self._data)

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``."""
        if offset < 0 or length <= 0:
            return b""
        return self._data[offset : offset + length]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipEntry:
    """One central-directory entry, with zip64 values already applied."""

    index: int
    """Position in the central directory (miniz's file index)."""
    raw_name: bytes
    """The name as stored."""
    flags: int
    """General-purpose flag bits."""
    method: int
    """Compression method (0 stored, 8 deflate, ...)."""
    crc: int
    """CRC-32 the directory declares."""
    compressed: int
    """Compressed size."""
    size: int
    """Uncompressed size."""
    local_offset: int
    """Offset of the local header, as stored (add a view's base)."""
    external_attr: int = 0
    """External attributes (Unix mode in the high 16 bits)."""

    @property
    def name(self) -> str:
        """The name decoded as zip readers do: UTF-8 when flagged, else CP437."""
        if self.flags & FLAG_UTF8:
            return self.raw_name.decode("utf-8", "replace")
        return self.raw_name.decode("cp437")


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipDirectory:
    """The archive's directory."""

    entries: tuple[ZipEntry, ...]
    """Entries in central-directory order."""
    declared_entries: int
    """How many entries the end record declares."""
    directory_start: int
    """Where the central directory really is in the file."""
    directory_offset: int
    """Where the end record says it is."""
    zip64: bool
    """Whether zip64 end records were used."""

    @property
    def prefix(self) -> int:
        """Bytes before the archive proper, as Python's zipfile computes them (``0`` normally)."""
        return self.directory_start - self.directory_offset


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalHeader:
    """A member's local header."""

    offset: int
    """Where it is in the file."""
    raw_name: bytes
    """Name as written in the local header."""
    flags: int
    """Flag bits in the local header."""
    method: int
    """Method in the local header."""
    crc: int
    """CRC in the local header (zero when a data descriptor follows)."""
    compressed: int
    """Compressed size in the local header."""
    size: int
    """Uncompressed size in the local header."""
    data_offset: int
    """Where the member's data starts."""


def _zip64_extra(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4 : pos + 4 + length]
            values = [int.from_bytes(body[i : i + 8], "little") for i in range(0, len(body) - 7, 8)]
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        pos += 4 + length
    return size, compressed, offset


def _end_record(src: ByteSource) -> int:
    """Offset of the last end-of-central-directory signature with a whole record after it.

    Like miniz, searches backwards from the end: the last 4 KiB first (archives without a long
    comment), then the whole 64 KiB + 22 bytes a comment can occupy.
    """
    for window in (min(src.size, 4096), min(src.size, 22 + 65535)):
        tail = src.read_at(src.size - window, window)
        pos = tail.rfind(EOCD_SIG, 0, max(len(tail) - 18, 0))
        if pos >= 0:
            return src.size - window + pos
        if window == src.size:
            break
    raise ZipFormatError("no end of central directory record: not a complete zip archive")


def read_directory(src: ByteSource, *, max_entries: int = MAX_ENTRIES) -> ZipDirectory:
    """Parse the end records and the central directory. Raise ``ZipFormatError`` when broken."""
    eocd = _end_record(src)
    record = src.read_at(eocd, 22)
    entries, cd_size, cd_offset = struct.unpack_from("<10xHII", record, 0)
    cd_end = eocd
    zip64 = False
    locator = src.read_at(eocd - 20, 20) if eocd >= 20 else b""
    if locator.startswith(ZIP64_LOCATOR_SIG):
        z64_at = struct.unpack_from("<Q", locator, 8)[0]
        z64 = src.read_at(z64_at, 56)
        if not z64.startswith(ZIP64_EOCD_SIG) and eocd >= 76:
            z64_at = eocd - 76  # the locator's offset is relative: junk before the archive
            z64 = src.read_at(z64_at, 56)
        if not (z64.startswith(ZIP64_EOCD_SIG) and len(z64) == 56):
            raise ZipFormatError("the zip64 end of central directory record is missing")
        entries, cd_size, cd_offset = struct.unpack_from("<QQQ", z64, 32)
        cd_end = z64_at
        zip64 = True
    if cd_size > MAX_DIRECTORY_BYTES:
        raise ResourceLimitError(
            f"central directory of {cd_size} bytes is over the {MAX_DIRECTORY_BYTES}-byte limit",
            limit="zip-directory-bytes",
            value=cd_size,
        )
    cd_start = cd_end - cd_size
    if cd_start < 0 or cd_offset > cd_start:
        raise ZipFormatError("the central directory offset points outside the file")
    cd = src.read_at(cd_start, cd_size)
    parsed: list[ZipEntry] = []
    off = 0
    while off + 46 <= len(cd) and len(parsed) < entries:
        if len(parsed) >= max_entries:
            raise ResourceLimitError(
                f"more than {max_entries} members in the archive",
                limit="zip-members",
                value=max_entries,
            )
        if cd[off : off + 4] != CENTRAL_SIG:
            raise ZipFormatError(f"central directory entry {len(parsed)} is broken")
        flags, method, crc, compressed, size, n, m, k = struct.unpack_from("<8xHH4xIIIHHH", cd, off)
        attr, local = struct.unpack_from("<II", cd, off + 38)
        raw_name = cd[off + 46 : off + 46 + n]
        extra = cd[off + 46 + n : off + 46 + n + m]
        size, compressed, local = _zip64_extra(extra, size, compressed, local)
        parsed.append(
            ZipEntry(
                index=len(parsed),
                raw_name=raw_name,
                flags=flags,
                method=method,
                crc=crc,
                compressed=compressed,
                size=size,
                local_offset=local,
                external_attr=attr,
            )
        )
        off += 46 + n + m + k
    if len(parsed) < entries:
        raise ZipFormatError(f"the directory declares {entries} members but holds {len(parsed)}")
    return ZipDirectory(
        entries=tuple(parsed),
        declared_entries=entries,
        directory_start=cd_start,
        directory_offset=cd_offset,
        zip64=zip64,
    )


def read_local_header(src: ByteSource, entry: ZipEntry, *, base: int) -> LocalHeader:
    """The member's local header in the view ``base``; ``ZipFormatError`` when it is not there."""
    at = base + entry.local_offset
    raw = src.read_at(at, 30)
    if len(raw) < 30 or not raw.startswith(LOCAL_SIG):
        raise ZipFormatError(f"{entry.name}: no local header at offset {at}")
    flags, method, crc, compressed, size, n, m = struct.unpack_from("<6xHH4xIIIHH", raw, 0)
    return LocalHeader(
        offset=at,
        raw_name=src.read_at(at + 30, n),
        flags=flags,
        method=method,
        crc=crc,
        compressed=compressed,
        size=size,
        data_offset=at + 30 + n + m,
    )


def iter_member(
    src: ByteSource,
    entry: ZipEntry,
    header: LocalHeader,
    *,
    max_bytes: int,
    exact_size: bool = True,
    max_ratio: int = MAX_RATIO,
) -> Iterator[bytes]:
    """Yield a member's uncompressed bytes in chunks, reading at most ``max_bytes`` of output.

    Sizes come from the central directory, as both miniz and zipfile take them. With
    ``exact_size``, output beyond the declared size is not produced (miniz's buffer is exactly that
    big). Raises ``ResourceLimitError`` past ``max_bytes``, ``ZipFormatError`` for methods that
    cannot be read or data that ends early.
    """
    if entry.flags & UNREADABLE_FLAGS:
        raise ZipFormatError(f"{entry.name}: member is encrypted (flag bits {entry.flags:#06x})")
    wanted = entry.size
    if (entry.method == 0 or exact_size) and wanted > max_bytes:
        raise ResourceLimitError(
            f"{entry.name}: {wanted} bytes uncompressed, over the {max_bytes}-byte limit",
            limit="member-bytes",
            value=wanted,
        )
    if entry.method == 0:
        pos, left = header.data_offset, entry.size
        while left > 0:
            chunk = src.read_at(pos, min(left, _CHUNK))
            if not chunk:
                raise ZipFormatError(f"{entry.name}: data ends before its declared size")
            pos += len(chunk)
            left -= len(chunk)
            yield chunk
        return
    kind = {8: "deflate", 12: "bz2"}.get(entry.method)
    if kind is None:
        raise ZipFormatError(f"{entry.name}: compression method {entry.method} is not supported")
    position, left = header.data_offset, entry.compressed

    def read(n: int) -> bytes:
        nonlocal position, left
        chunk = src.read_at(position, min(n, left))
        position += len(chunk)
        left -= len(chunk)
        return chunk

    try:
        yield from decode_stream(
            read, kind, max_bytes=max_bytes, max_ratio=max_ratio, exact=entry.size if exact_size else None
        )
    except InputError as exc:
        raise ZipFormatError(f"{entry.name}: {exc.message}") from None


def read_member(
    src: ByteSource, entry: ZipEntry, header: LocalHeader, *, max_bytes: int, exact_size: bool = True
) -> bytes:
    """A member's uncompressed bytes (see :func:`iter_member`)."""
    return b"".join(iter_member(src, entry, header, max_bytes=max_bytes, exact_size=exact_size))
