"""Streaming CSV and TSV.

The dialect is sniffed from the head of the file (:class:`csv.Sniffer`, falling back to a comma, or a
tab for TSV). The first row is a header when its fields are all non-empty, distinct and not numbers;
otherwise the columns are named ``col_1`` .. ``col_n``.

Row numbers count records, not physical lines: the first record under the header is row 1 (row 1 is
the first record when there is no header), a quoted field holding newlines does not advance the
count, and blank lines are skipped without being counted. A record that is skipped still uses up
its number, so the numbers of the rows after it match the file.

How the line bound meets quoted newlines: the :mod:`csv` module pulls physical lines, each read with
a bounded ``readline``, and a record may pull several while a quoted field is open. The bound is
applied both to each physical line and to the whole record, so neither a single long line nor a
quoted field spanning many lines is ever held whole. When a record goes over the bound it is
skipped with a problem, and the reader resynchronises by counting quote characters: while their
count since the start of the record is odd a quoted field is still open, and further lines are
dropped until it closes. (A stray quote inside an unquoted field can fool that count; the cost is
more lines skipped, never unbounded memory.) A line ending ``\\r\\n`` inside a quoted field is read
as ``\\n``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from typing import IO

from garrison.data.readers_common import Batch, LineReader, ReadProblem, decode_line

SNIFF_BYTES = 16 * 1024
"""Bytes at the head of the file the dialect is sniffed from."""

_NUMBER = re.compile(r"^\s*[-+]?(\d[\d_,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


class _OversizeError(Exception):
    """A physical line or a whole record went over the byte bound."""

    def __init__(self, message: str, quotes: int) -> None:
        super().__init__(message)
        self.message = message
        self.quotes = quotes


class _Feed:
    """Lines for :func:`csv.reader`, keeping count of the record being read."""

    def __init__(self, lines: LineReader, limit: int, quotechar: str) -> None:
        self.lines = lines
        self.limit = limit
        self.quote = quotechar
        self.record_offset: int | None = None
        self.record_bytes = 0
        self.record_quotes = 0
        self.notes: list[str] = []
        self.eof = False

    def start_record(self) -> None:
        self.record_offset = None
        self.record_bytes = 0
        self.record_quotes = 0
        self.notes.clear()

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.eof = True
            raise
        if self.record_offset is None:
            self.record_offset = line.offset
        if line.text is None:
            raise _OversizeError(line.problem or "line too long; skipped", self.record_quotes + line.quotes)
        text = line.text
        quotes = text.count(self.quote) if self.quote else 0
        self.record_bytes += len(text) + 1
        if self.record_bytes > self.limit:
            raise _OversizeError(
                f"record longer than the limit of {self.limit} bytes (a quoted field spanning lines?); "
                "skipped",
                self.record_quotes + quotes,
            )
        self.record_quotes += quotes
        if line.problem is not None and line.problem not in self.notes:
            self.notes.append(line.problem)
        return line.text + "\n"


def sniff_dialect(head: bytes, *, tab: bool) -> type[csv.Dialect] | csv.Dialect:
    """The dialect of a CSV (``tab=False``) or TSV file, judged from its first bytes."""
    text, _ = decode_line(head[:SNIFF_BYTES], None)
    text = text.removeprefix("\ufeff")
    if "\n" in text:
        text = text[: text.rindex("\n")]
    delimiters = "\t" if tab else ",;|\t"
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text, delimiters=delimiters)
    except csv.Error:
        return csv.excel_tab if tab else csv.excel
    return dialect


def looks_like_header(fields: list[str]) -> bool:
    """Whether a first row names columns: non-empty, distinct, and no field is a number."""
    stripped = [field.strip() for field in fields]
    return (
        bool(stripped)
        and all(stripped)
        and len(set(stripped)) == len(stripped)
        and not any(_NUMBER.match(field) for field in stripped)
    )


def _resync(feed: _Feed, quotes: int) -> None:
    """Drop lines until the quoted field left open by a skipped record closes."""
    while quotes % 2:
        line = next(feed.lines, None)
        if line is None:
            return
        quotes += line.quotes if line.text is None else line.text.count(feed.quote)


_SKIPPED: list[str] = []
"""Marker :func:`_next_record` returns for a record it skipped."""


def _next_record(
    reader: Iterator[list[str]], feed: _Feed, row: int, problems: list[ReadProblem]
) -> list[str] | None:
    """The next record's fields, :data:`_SKIPPED` (with a problem) or ``None`` at the end."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except _OversizeError as exc:
        message = exc.message
        _resync(feed, exc.quotes)
    except csv.Error as exc:
        message = f"not valid CSV ({exc}); skipped"
    problems.append(
        ReadProblem(
            row=row + 1, byte_offset=feed.record_offset, column=None, message=f"row {row + 1}: {message}"
        )
    )
    return _SKIPPED


def iter_csv(
    stream: IO[bytes],
    *,
    dialect: type[csv.Dialect] | csv.Dialect,
    header: bool | None,
    batch_rows: int,
    max_line_bytes: int,
    encoding: str | None,
    progress: Callable[[], int],
) -> Iterator[Batch]:
    """Batches of a CSV stream; see the module docstring for the conventions."""
    if csv.field_size_limit() < max_line_bytes:  # our own bound is the one that protects memory
        csv.field_size_limit(max_line_bytes)
    quotechar = dialect.quotechar or ""
    lines = LineReader(stream, max_line_bytes=max_line_bytes, encoding=encoding, quotechar=quotechar)
    feed = _Feed(lines, max_line_bytes, quotechar)
    reader = csv.reader(feed, dialect)
    columns: tuple[str, ...] | None = None
    width = 0
    row = 0
    rows: list[tuple[int, tuple[str | None, ...]]] = []
    problems: list[ReadProblem] = []
    while True:
        feed.start_record()
        fields = _next_record(reader, feed, row, problems)
        if fields is None:
            break
        if fields is _SKIPPED:
            row += 1
            continue
        if not fields:
            continue
        if columns is None:
            is_header = looks_like_header(fields) if header is None else header
            width = len(fields)
            if is_header:
                columns = tuple(field.strip() for field in fields)
                _note_encoding(problems, feed, 0)
                continue
            columns = tuple(f"col_{i}" for i in range(1, width + 1))
        row += 1
        _note_encoding(problems, feed, row)
        if feed.eof and feed.record_quotes % 2:
            problems.append(
                ReadProblem(
                    row=row,
                    byte_offset=feed.record_offset,
                    column=None,
                    message=f"row {row}: quoted field not closed before the end of the file",
                )
            )
        values: tuple[str | None, ...] = tuple(fields)
        if len(fields) != width:
            values = _fit(values, width, row, feed.record_offset, problems)
        rows.append((row, values))
        if len(rows) >= batch_rows:
            yield Batch(columns=columns, rows=tuple(rows), problems=tuple(problems), bytes_read=progress())
            rows.clear()
            problems.clear()
    if rows or problems:
        yield Batch(columns=columns, rows=tuple(rows), problems=tuple(problems), bytes_read=progress())


def _note_encoding(problems: list[ReadProblem], feed: _Feed, row: int) -> None:
    for note in feed.notes:
        where = "header" if row == 0 else f"row {row}"
        problems.append(
            ReadProblem(row=row, byte_offset=feed.record_offset, column=None, message=f"{where}: {note}")
        )


def _fit(
    values: tuple[str | None, ...], width: int, row: int, offset: int | None, problems: list[ReadProblem]
) -> tuple[str | None, ...]:
    """Pad a short row with nulls or drop the extra fields of a long one, with a problem."""
    count = len(values)
    if count < width:
        action = "padded with nulls"
        values = values + (None,) * (width - count)
    else:
        action = "extra fields dropped"
        values = values[:width]
    problems.append(
        ReadProblem(
            row=row,
            byte_offset=offset,
            column=None,
            message=f"row {row}: {count} fields, expected {width}; {action}",
        )
    )
    return values
