"""NumPy ``.npy``/``.npz`` object arrays and compressed joblib files: where their pickles are.

``numpy.load(allow_pickle=True)`` unpickles the bytes after the header of an object-dtype ``.npy``
(one ``pickle.load``); in an ``.npz`` it does so for every member that starts with the NumPy magic
and has an object dtype, reading members through Python's zipfile (offsets shifted past any bytes
before the archive). ``joblib.load`` picks a decompressor from the first bytes and unpickles what
comes out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from garrison.core.errors import GarrisonError, ResourceLimitError
from garrison.formats.streams import decode_stream
from garrison.formats.tensors import NPY_MAGIC, npy_header
from garrison.formats.zipreader import (
    UNREADABLE_FLAGS,
    ByteSource,
    ZipEntry,
    read_directory,
    read_local_header,
    read_member,
)

MAX_PICKLE_BYTES = 1 << 30
"""Most decompressed bytes handed to the pickle engine from one stream or member."""

MAX_NPZ_MEMBERS = 10_000


def npy_data_offset(head: bytes) -> int | None:
    """Offset of the array data after a ``.npy`` header, or ``None`` when the header is broken."""
    if not head.startswith(NPY_MAGIC) or len(head) < 10:
        return None
    if head[6] == 1:
        return 10 + int(struct.unpack_from("<H", head, 8)[0])
    if head[6] in (2, 3) and len(head) >= 12:
        return 12 + int(struct.unpack_from("<I", head, 8)[0])
    return None


def npy_pickle(data: bytes) -> tuple[bytes | None, str | None]:
    """(pickle bytes of an object array or ``None``, why the header is broken or ``None``)."""
    header = npy_header(data[: 1 << 20])
    if header is None:
        return None, "not a NumPy array"
    offset = npy_data_offset(data)
    if header.malformed and not header.objects:
        return None, header.malformed
    if not header.objects or offset is None:
        return None, None
    return data[offset:], header.malformed


def npz_members(src: ByteSource) -> Iterator[tuple[ZipEntry, bytes | None, str | None]]:
    """Each ``.npz`` member as numpy reads it: (entry, bytes or ``None``, why it is unreadable)."""
    directory = read_directory(src, max_entries=MAX_NPZ_MEMBERS)
    for entry in directory.entries:
        if entry.flags & UNREADABLE_FLAGS or entry.method not in (0, 8, 12):
            yield entry, None, f"flag bits {entry.flags:#06x}, method {entry.method}"
            continue
        try:
            local = read_local_header(src, entry, base=directory.prefix)
            yield entry, read_member(src, entry, local, max_bytes=MAX_PICKLE_BYTES, exact_size=False), None
        except ResourceLimitError:
            raise
        except GarrisonError as exc:
            yield entry, None, exc.message


def joblib_pickle(read: Callable[[int], bytes], compression: str) -> bytes:
    """The decompressed pickle of a compressed joblib file (bounded in size and ratio)."""
    return b"".join(decode_stream(read, compression, max_bytes=MAX_PICKLE_BYTES))
