"""What every dataset reader yields, and the bounded line reader the text formats share.

Text formats (CSV, TSV, JSON Lines, plain text) are read as raw bytes, one line at a time, with a
``readline`` bounded by ``max_line_bytes``: a line longer than that is never held in memory whole;
its remaining bytes are read in bounded chunks and thrown away. Each line is decoded on its own, so a
file that mixes UTF-8 and cp1252 lines (a common result of concatenating exports) is read line by line
with a problem for each line that was not UTF-8. A file that starts with a UTF-16 byte-order mark
(what spreadsheets export as "Unicode text") is transcoded to UTF-8 on the fly by
:class:`Utf8FromUtf16` first; byte offsets in its problems then count the UTF-8 bytes.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from typing import IO, NamedTuple

from garrison.core.errors import UsageError

BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte order mark, dropped from the start of a file."""


class Utf8FromUtf16(io.RawIOBase):
    """A UTF-16 byte stream (BOM first) read as UTF-8, decoded in 64 KiB chunks: memory stays bounded.

    Wrap it in :class:`io.BufferedReader` for ``readline``. Code units that are not UTF-16 (a lone
    surrogate, an odd last byte) become U+FFFD.
    """

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
        self._pending = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        """Always: this is an input stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next UTF-8 bytes; 0 at the end."""
        while not self._pending and not self._eof:
            chunk = self._source.read(1 << 16)
            self._eof = not chunk
            text = self._decoder.decode(chunk, final=self._eof)
            self._pending = memoryview(text.encode("utf-8"))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadProblem:
    """Something wrong in the input, with where it is. Never fatal: reading goes on."""

    row: int | None
    """1-based data row, or ``None``. For CSV the header is row 0 and the first row under it is 1."""
    byte_offset: int | None
    """Offset in the (decompressed) file of the start of the line or record at fault, or ``None``."""
    column: str | None
    """The column at fault, or ``None`` when the problem is with the whole row."""
    message: str
    """One line naming what was wrong and where (``row 12: 3 fields, expected 2``): shown as it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """Up to ``batch_rows`` consecutive rows of a dataset, as text."""

    columns: tuple[str, ...] | None
    """Column names; ``None`` for plain text, where each row is one line."""
    rows: tuple[tuple[int, tuple[str | None, ...]], ...]
    """``(row number, values)``; values are aligned with :attr:`columns`, ``None`` is a null."""
    problems: tuple[ReadProblem, ...]
    """Problems met while reading these rows."""
    bytes_read: int
    """Bytes of the file consumed so far (compressed bytes for a compressed file), for progress."""


class Line(NamedTuple):
    """One physical line of a text file (a named tuple: one is made per line, on the hot path)."""

    number: int
    """1-based physical line number."""
    offset: int
    """Byte offset of its first byte."""
    text: str | None
    """Decoded text without the line ending; ``None`` when the line was too long and was skipped."""
    quotes: int = 0
    """How many quote characters the skipped part held (for CSV resynchronisation)."""
    problem: str | None = None
    """Why the line was skipped or how it was decoded, if anything was wrong."""


def check_encoding(encoding: str | None) -> str | None:
    """The normalised codec name, or ``None`` for "UTF-8, falling back per line to cp1252"."""
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(f"unknown text encoding {encoding!r}") from None
    if name.startswith(("utf-16", "utf-32")):
        raise UsageError(
            f"encoding {encoding!r} is not supported for streaming",
            hint="a file that starts with a UTF-16 byte-order mark is read without --encoding; "
            "convert any other to UTF-8 first, for example with iconv",
        )
    return name


def decode_line(raw: bytes, encoding: str | None) -> tuple[str, str | None]:
    """Decode one line; the text and a note when it was not in the expected encoding."""
    if encoding is not None:
        try:
            return raw.decode(encoding), None
        except UnicodeDecodeError:
            return raw.decode(encoding, errors="replace"), f"not valid {encoding}, bad bytes replaced"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "not UTF-8, read as cp1252"
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined (0x81, 0x8d, ...)
        return raw.decode("latin-1"), "not UTF-8, read as latin-1"


def _strip_eol(raw: bytes) -> bytes:
    if raw[-1:] == b"\n":
        return raw[:-2] if raw[-2:] == b"\r\n" else raw[:-1]
    return raw[:-1] if raw[-1:] == b"\r" else raw


class LineReader:
    """Physical lines of a binary stream, each bounded by ``max_line_bytes``."""

    def __init__(
        self, stream: IO[bytes], *, max_line_bytes: int, encoding: str | None, quotechar: str = '"'
    ) -> None:
        self._stream = stream
        self._limit = max(max_line_bytes, 1)
        self._encoding = encoding
        self._quote = quotechar.encode("latin-1") if quotechar else b""
        self.offset = 0
        """Bytes consumed so far."""
        self.number = 0
        """Physical lines read so far."""

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> Line:
        start = self.offset
        raw = self._stream.readline(self._limit + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        self.offset += len(raw)
        if len(raw) > self._limit and not raw.endswith(b"\n"):
            return self._skip(start, raw)
        if start == 0 and raw.startswith(BOM) and self._encoding in (None, "utf-8"):
            raw = raw[len(BOM) :]
        raw = _strip_eol(raw)
        if self._encoding is None:
            try:  # the common case, without the call
                return Line(self.number, start, raw.decode("utf-8"))
            except UnicodeDecodeError:
                pass
        text, note = decode_line(raw, self._encoding)
        return Line(self.number, start, text, 0, note)

    def _skip(self, start: int, raw: bytes) -> Line:
        """Read and drop the rest of an over-long line, counting its quote characters."""
        total = len(raw)
        quotes = raw.count(self._quote) if self._quote else 0
        while not raw.endswith(b"\n"):
            raw = self._stream.readline(self._limit + 1)
            if not raw:
                break
            total += len(raw)
            quotes += raw.count(self._quote) if self._quote else 0
        self.offset = start + total
        return Line(
            number=self.number,
            offset=start,
            text=None,
            quotes=quotes,
            problem=f"line of {total} bytes is longer than the limit of {self._limit} bytes; skipped",
        )
