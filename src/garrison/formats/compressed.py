"""Compressed streams: gzip, bzip2, xz, LZ4 frames, 7-Zip, and joblib's compressed pickles.

``joblib.dump(..., compress=...)`` writes a pickle through zlib, gzip, bz2, xz, lzma or lz4. Only a
bounded prefix is decompressed, and only to look at the first opcodes of what is inside: a
compressed pickle is identified as ``joblib``, a compressed tar as ``tar`` with a ``compression``
detail, anything else as the container.
"""

from __future__ import annotations

import bz2
import importlib
import lzma
import zlib
from typing import Protocol

from garrison.core.errors import GarrisonError
from garrison.formats.archives import is_tar_header
from garrison.formats.info import Identification
from garrison.formats.pickles import classify_pickle
from garrison.formats.source import Source

COMPRESSED_INPUT = 1024 * 1024
"""Most compressed bytes fed to a decompressor (one bzip2 block fits)."""

DECOMPRESSED_PREFIX = 256 * 1024
"""Most decompressed bytes looked at."""

_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes: ...


class _Zlib:
    """Adapter giving a zlib decompress object the bz2/lzma interface."""

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits=wbits)
        self.eof = False

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes:
        out = self._obj.decompress(data, max(max_length, 0))
        self.eof = self._obj.eof
        return out


def _lz4_decompressor() -> _Decompressor | None:
    try:
        frame = importlib.import_module("lz4.frame")
    except ImportError:
        return None
    decompressor: _Decompressor = frame.LZ4FrameDecompressor()
    return decompressor


def _container(head: bytes) -> tuple[str, str] | None:
    """(compression name, format id or '' when the compression has no container format)."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip", "gzip"
    if head.startswith(b"BZh") and len(head) >= 4 and head[3:4].isdigit():
        return "bz2", "bz2"
    if head.startswith(_XZ_MAGIC):
        return "xz", "xz"
    if head.startswith(_LZ4_MAGIC):
        return "lz4", "lz4"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib", ""
    if len(head) >= 13 and head[0] == 0x5D and head[1:3] == b"\x00\x00":
        return "lzma", ""
    if head.startswith(b"ZF0x"):
        return "joblib-zfile", ""
    return None


def _decompressor(kind: str) -> _Decompressor | None:
    if kind == "gzip":
        return _Zlib(31)
    if kind in ("zlib", "joblib-zfile"):
        return _Zlib(15)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    return _lz4_decompressor()


def sniff_compressed(src: Source) -> Identification | None:
    """Identify a compressed stream, looking into a bounded prefix of what it holds."""
    if src.head.startswith(_7Z_MAGIC):
        return Identification(format="7z")
    found = _container(src.head)
    if found is None:
        return None
    kind, container = found
    start = 0
    if kind == "joblib-zfile":
        start = src.head.find(b"\x78", 4, 64)
        if start < 0:
            return None
    decompressor = _decompressor(kind)
    if decompressor is None:
        return Identification(format="lz4", details=(("decoded", "no: the lz4 package is not installed"),))
    try:
        data = src.read_at(start, min(src.size - start, COMPRESSED_INPUT))
    except GarrisonError:
        data = src.head[start:]
    whole_input = start + len(data) >= src.size
    fault: str | None = None
    try:
        out = decompressor.decompress(data, DECOMPRESSED_PREFIX)
    except (
        zlib.error,
        OSError,
        lzma.LZMAError,
        EOFError,
        ValueError,
        RuntimeError,
    ) as exc:  # lz4: RuntimeError
        out = b""
        fault = f"{kind} stream is corrupt: {exc}"[:200]
    complete = decompressor.eof
    if fault is None and whole_input and not complete and len(out) < DECOMPRESSED_PREFIX:
        fault = f"{kind} stream ends before its end marker (truncated)"
    compression = ("compression", kind if kind != "joblib-zfile" else "zlib")
    inner = classify_pickle(out, complete=complete) if out else None
    if inner is not None:
        details = (compression, *inner.details)
        return Identification(format="joblib", details=details, malformed=fault or inner.malformed)
    if len(out) >= 512 and is_tar_header(out[:512]):
        return Identification(format="tar", details=(compression,), malformed=fault)
    if not container:
        return None  # zlib, lzma and zfile headers are too weak to claim a file on their own
    return Identification(format=container, malformed=fault)
