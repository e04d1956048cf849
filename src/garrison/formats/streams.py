"""Bounded streaming decompression: zlib, gzip, bzip2, xz, lzma-alone and LZ4 frames.

Every decoder is fed compressed chunks and asked for at most a given number of output bytes, so a
decompression bomb costs the scanner at most its output limit. A ratio limit (output over input)
catches bombs early, before the output limit is reached.
"""

from __future__ import annotations

import bz2
import importlib
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from garrison.core.errors import InputError, MissingExtraError, ResourceLimitError

CHUNK = 1 << 20
"""Compressed bytes read, and decompressed bytes produced, per step."""

MAX_RATIO = 200
"""Most output bytes per input byte before a stream counts as a decompression bomb."""

RATIO_GRACE = 1 << 20
"""Output below which the ratio is not checked (tiny files compress very well)."""


class Decoder:
    """One streaming decompressor behind one interface: feed input, take bounded output."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        """Compression name: ``zlib``, ``deflate`` (raw), ``gzip``, ``bz2``, ``xz``, ``lzma``, ``lz4``."""
        self._obj: Any
        self._zlib = kind in ("zlib", "deflate", "gzip")
        if kind == "zlib":
            self._obj = zlib.decompressobj(15)
        elif kind == "deflate":
            self._obj = zlib.decompressobj(-15)
        elif kind == "gzip":
            self._obj = zlib.decompressobj(31)
        elif kind == "bz2":
            self._obj = bz2.BZ2Decompressor()
        elif kind == "xz":
            self._obj = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elif kind == "lzma":
            self._obj = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        elif kind == "lz4":
            try:
                frame = importlib.import_module("lz4.frame")
            except ImportError:
                raise MissingExtraError(
                    "reading LZ4-compressed files", extra="archives", module="lz4"
                ) from None
            self._obj = frame.LZ4FrameDecompressor()
        else:
            raise InputError(f"unknown compression {kind!r}")

    @property
    def eof(self) -> bool:
        """Whether the end of the compressed stream was reached."""
        return bool(self._obj.eof)

    @property
    def needs_input(self) -> bool:
        """Whether the decoder has consumed all input given so far."""
        if self._zlib:
            return not self._obj.unconsumed_tail
        return bool(getattr(self._obj, "needs_input", True))

    def unused(self) -> bytes:
        """Input after the end of the stream (a second gzip member, trailing junk)."""
        return bytes(getattr(self._obj, "unused_data", b""))

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decompress ``data`` (after any input still pending) into at most ``limit`` bytes."""
        try:
            if self._zlib:
                pending = self._obj.unconsumed_tail
                out: bytes = self._obj.decompress(pending + data if pending else data, limit)
                return out
            if self.eof:
                return b""
            return bytes(self._obj.decompress(data, limit))
        except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError, RuntimeError) as exc:
            raise InputError(f"{self.kind} data is corrupt ({str(exc)[:120]})") from None


def decode_stream(
    read: Callable[[int], bytes],
    kind: str,
    *,
    max_bytes: int,
    max_ratio: int = MAX_RATIO,
    exact: int | None = None,
) -> Iterator[bytes]:
    """Yield the decompressed bytes of a stream read with ``read(n)``, within limits.

    Raises ``ResourceLimitError`` when the output passes ``max_bytes`` or the ratio of output to
    input passes ``max_ratio``; ``InputError`` when the data is corrupt. With ``exact`` the output
    stops at that many bytes (a zip member's declared size).
    """
    decoder = Decoder(kind)
    consumed = produced = 0
    cap = max_bytes + 1 if exact is None else min(exact, max_bytes + 1)  # one past: overflow is seen
    while not decoder.eof and produced < cap:
        data = b""
        if decoder.needs_input:
            data = read(CHUNK)
            if not data:
                break
            consumed += len(data)
        out = decoder.decode(data, min(CHUNK, cap - produced))
        if not out and not data and decoder.needs_input:
            break
        produced += len(out)
        if produced > max_bytes:
            raise ResourceLimitError(
                f"{kind} data expands past the {max_bytes}-byte limit",
                limit="expanded-bytes",
                value=max_bytes,
            )
        if produced > RATIO_GRACE and produced > max_ratio * max(consumed, 1):
            raise ResourceLimitError(
                f"{kind} data expands more than {max_ratio} times (a decompression bomb)",
                limit="expansion-ratio",
                value=max_ratio,
            )
        if out:
            yield out


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what :func:`decode_stream` yields)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_stream(
    read: Callable[[int], bytes], kind: str, *, max_bytes: int, max_ratio: int = MAX_RATIO
) -> io.BufferedReader:
    """A file-like reader of :func:`decode_stream`'s output, for parsers that want ``read(n)``."""
    return io.BufferedReader(
        _ChunkReader(decode_stream(read, kind, max_bytes=max_bytes, max_ratio=max_ratio))
    )


def sniff_compression(head: bytes) -> str | None:
    """The compression a stream starts with, as joblib detects it, or ``None``."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ"):
        return "xz"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"x") and len(head) >= 2 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None
