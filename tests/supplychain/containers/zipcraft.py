"""Build zip archives byte by byte, with every field under the test's control.

Python's :mod:`zipfile` refuses to write the malformed archives the tampering tests need (names that
differ between the local and central headers, wrong CRCs, odd flag bits, junk before the archive),
so the tests write them here. Only the standard library is used.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    """One member, and every way a test may want to lie about it."""

    name: str
    data: bytes = b""
    method: int = 0
    flags: int = 0x800
    local_name: str | None = None
    """Name written in the local header (defaults to :attr:`name`)."""
    crc: int | None = None
    """CRC written in both headers (defaults to the real one)."""
    local_flags: int | None = None
    sparse_size: int | None = None
    """Write a stored member of this many zero bytes as a hole in a sparse file (path output only)."""
    payload: bytes = field(default=b"", init=False)


def _payload(entry: Entry) -> bytes:
    if entry.method == 8:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        return comp.compress(entry.data) + comp.flush()
    return entry.data


def build_zip(
    entries: list[Entry], *, prefix: bytes = b"", relative_offsets: bool = False, zip64: bool = True
) -> bytes:
    """The bytes of a zip holding ``entries``, after ``prefix`` junk.

    Offsets are absolute in the file (what miniz expects) unless ``relative_offsets``, which makes
    them relative to the start of the zip (what Python's zipfile tolerates).
    """
    out = bytearray(prefix)
    skew = len(prefix) if relative_offsets else 0
    central = bytearray()
    for entry in entries:
        payload = _payload(entry)
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        offset = len(out) - skew
        lname = (entry.local_name if entry.local_name is not None else entry.name).encode()
        lflags = entry.flags if entry.local_flags is None else entry.local_flags
        out += (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                lflags,
                entry.method,
                0,
                0x21,
                crc,
                len(payload),
                len(entry.data),
                len(lname),
                0,
            )
            + lname
            + payload
        )
        name = entry.name.encode()
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                entry.flags,
                entry.method,
                0,
                0x21,
                crc,
                len(payload),
                len(entry.data),
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    cd_offset = len(out) - skew
    out += central
    if zip64:
        z64 = len(out)
        out += struct.pack(
            "<IQHHIIQQQQ",
            0x06064B50,
            44,
            45,
            45,
            0,
            0,
            len(entries),
            len(entries),
            len(central),
            cd_offset,
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, z64 - skew, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset, 0)
    return bytes(out)


def write_sparse_checkpoint(path: Path, pickle_bytes: bytes, storage_bytes: int) -> None:
    """A PyTorch-style zip whose ``archive/data/0`` is ``storage_bytes`` zeros, written as a hole."""
    head = [Entry(name="archive/data.pkl", data=pickle_bytes), Entry(name="archive/version", data=b"3\n")]
    blob = build_zip(head, zip64=False)
    # Cut the directory off, append the big member as a hole, then write the full directory.
    cd_at = struct.unpack_from("<I", blob, len(blob) - 6)[0]
    body = bytearray(blob[:cd_at])
    central = bytearray(blob[cd_at : len(blob) - 22])
    name = b"archive/data/0"
    offset = len(body)
    crc = 0  # never checked by torch for storages; the scanner must not read them anyway
    local = (
        struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0x800, 0, 0, 0x21, crc, storage_bytes, storage_bytes, len(name), 0
        )
        + name
    )
    central += (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0x800,
            0,
            0,
            0x21,
            crc,
            storage_bytes,
            storage_bytes,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )
    with path.open("wb") as handle:
        handle.write(body)
        handle.write(local)
        handle.seek(storage_bytes, 1)
        cd_offset = handle.tell()
        handle.write(central)
        handle.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(central), cd_offset, 0))
