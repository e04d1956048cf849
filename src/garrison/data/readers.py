"""Read a dataset file as batches of text rows, with bounded memory.

:func:`iter_batches` reads CSV, TSV, JSON Lines, Parquet and plain text, and gzip-compressed CSV,
TSV, JSON Lines and text, yielding :class:`Batch` objects of at most ``batch_rows`` rows. Memory is
bounded by ``batch_rows`` times the size of a row (itself bounded by ``max_line_bytes`` for the text
formats), never by the size of the file. Anything wrong inside the file is a :class:`ReadProblem` in
the batch where it was met, and reading goes on; only a file that cannot be read at all raises.

Row numbering, per format:

- CSV/TSV: records, not lines; the header is row 0 and the first record under it is row 1;
  blank lines are not counted (:mod:`garrison.data.readers_csv`).
- JSON Lines and plain text: physical line numbers from 1 (:mod:`garrison.data.readers_jsonl`).
- Parquet: rows from 1 across row groups (:mod:`garrison.data.readers_parquet`).
- Images: one row per image, one column per metadata field (EXIF, PNG text, comments, XMP); a
  single image file is one row, an image folder is numbered from 1 in path order
  (:mod:`garrison.data.readers_images`).
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from garrison.core.errors import InputError, UnsupportedFormatError, UsageError
from garrison.data.readers_common import BOM, Batch, ReadProblem, Utf8FromUtf16, check_encoding, decode_line
from garrison.data.readers_csv import iter_csv, sniff_dialect
from garrison.data.readers_images import is_image_folder, iter_image_batches, sniff_image
from garrison.data.readers_jsonl import iter_jsonl, iter_text
from garrison.formats.text import decode_utf16, is_utf16

__all__ = ["KINDS", "Batch", "ReadProblem", "detect_kind", "iter_batches"]

KINDS: tuple[str, ...] = ("csv", "tsv", "jsonl", "parquet", "text", "image", "image-folder")
"""The kinds :func:`detect_kind` returns and :func:`iter_batches` accepts."""

_GZIP_MAGIC = b"\x1f\x8b"
_HEAD = 64 * 1024
_TSV_NAMES = (".tsv", ".tab", ".tsv.gz", ".tab.gz")


def _read_head(path: Path) -> tuple[bytes, int, bool]:
    """The first bytes of the file (decompressed when gzip), its size, and whether it is gzip."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not head.startswith(_GZIP_MAGIC):
        utf8 = _as_utf8(head, size)
        # a whole UTF-16 file read as UTF-8 is as long as its UTF-8 (what "whole" is judged by)
        return utf8, (len(utf8) if utf8 is not head and len(head) >= size else size), False
    inflater = zlib.decompressobj(wbits=31)
    try:
        inner = inflater.decompress(head, _HEAD)
    except zlib.error as exc:
        raise InputError(f"{path}: gzip stream is corrupt: {exc}") from None
    return _as_utf8(inner, None), size, True


def _as_utf8(head: bytes, size: int | None) -> bytes:
    """A UTF-16 head (BOM first) as the UTF-8 bytes the readers will see (:func:`_open`)."""
    if not is_utf16(head):
        return head
    text = decode_utf16(head, whole=size is not None and len(head) >= size)
    return head if text is None else text.encode("utf-8")


def _classify_text(head: bytes, path: Path) -> str:
    """The kind of a text head that ``identify`` did not take for text (mixed encodings, ...)."""
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormatError(f"{path}: binary or UTF-16 content, not a text dataset")
    text = "\n".join(decode_line(raw, None)[0] for raw in head.removeprefix(BOM).split(b"\n"))
    lines = [line for line in text.splitlines() if line.strip()]
    if len(head) >= _HEAD and lines:
        lines.pop()  # the last line may be cut off
    if not lines:
        return "text"
    try:
        if all(isinstance(json.loads(line), dict | list) for line in lines[:20]):
            return "jsonl"
    except (ValueError, RecursionError):
        pass
    dialect = sniff_dialect(head, tab=False)
    if (
        dialect.delimiter in ",;|\t"
        and sum(dialect.delimiter in line for line in lines) >= len(lines) // 2 + 1
    ):
        return "tsv" if dialect.delimiter == "\t" else "csv"
    return "text"


def _from_identification(fmt: str, delimiter: str | None, head: bytes, path: Path) -> str:
    name = path.name.lower()
    if fmt == "csv":
        return "tsv" if delimiter == "tab" or (delimiter is None and name.endswith(_TSV_NAMES)) else "csv"
    if fmt in ("jsonl", "parquet"):
        return fmt
    if fmt == "json":
        first = head.lstrip().split(b"\n", 1)[0]
        try:
            json.loads(first)
        except (ValueError, RecursionError):
            raise UnsupportedFormatError(
                f"{path}: a single JSON document, not JSON Lines", hint="write one JSON value per line"
            ) from None
        return "jsonl"
    if fmt == "text":
        # the content is text; a name promising CSV/TSV settles it when the rows are ragged
        if name.endswith((".csv", ".csv.gz")):
            return "csv"
        if name.endswith(_TSV_NAMES):
            return "tsv"
        return "text"
    if fmt == "unknown":
        return _classify_text(head, path)
    raise UnsupportedFormatError(f"{path}: {fmt} is not a dataset format Garrison reads")


def detect_kind(path: Path) -> str:
    """The kind of dataset at ``path``: ``csv``, ``tsv``, ``jsonl``, ``parquet``, ``text``,
    ``image`` (one PNG, JPEG, GIF, BMP, WebP or TIFF file) or ``image-folder`` (a directory of them).

    Judged by content through :func:`garrison.formats.identify.identify` and the image magic
    numbers; the file name only decides between CSV and TSV when the content does not. A gzip file
    is judged by what it holds. An empty file is ``text``. Raises :class:`UnsupportedFormatError`
    for anything else, a directory that is not an image folder included.
    """
    from garrison.formats.identify import identify
    from garrison.formats.info import Identification
    from garrison.formats.source import Source
    from garrison.formats.text import sniff_text

    if path.is_dir():
        if is_image_folder(path):
            return "image-folder"
        raise UnsupportedFormatError(
            f"{path}: a directory that is not an image folder", hint="name a dataset file in it"
        )
    head, size, gz = _read_head(path)
    if not head:
        return "text"
    if gz:
        found = sniff_text(Source(path, head, len(head) + (1 if len(head) >= _HEAD else 0)))
        found = found or Identification(format="unknown")
    else:
        found = identify(path, head, size)
        if found.format == "unknown" and sniff_image(head) is not None:
            return "image"
    return _from_identification(found.format, found.detail("delimiter"), head, path)


@contextmanager
def _open(path: Path) -> Iterator[tuple[IO[bytes], Callable[[], int]]]:
    """The file as a binary stream (decompressed when gzip) and a function telling bytes read."""
    try:
        raw = path.open("rb", buffering=0)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        buffered = io.BufferedReader(raw, 1 << 20)
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as stream:
                inner = cast(IO[bytes], stream)
                yield (_utf8_stream(inner) if is_utf16(stream.peek(4)[:4]) else inner), raw.tell
        elif is_utf16(buffered.peek(4)[:4]):
            yield _utf8_stream(buffered), raw.tell
        else:
            yield buffered, buffered.tell
    finally:
        raw.close()


def _utf8_stream(stream: IO[bytes]) -> IO[bytes]:
    return cast(IO[bytes], io.BufferedReader(Utf8FromUtf16(stream), 1 << 20))


def iter_batches(
    path: Path,
    *,
    kind: str | None = None,
    batch_rows: int = 5_000,
    max_line_bytes: int = 1 << 20,
    encoding: str | None = None,
    header: bool | None = None,
) -> Iterator[Batch]:
    """Batches of the rows of the dataset at ``path``.

    ``kind`` is one of :data:`KINDS`, or ``None`` to :func:`detect_kind` it; ``path`` may be an
    image folder. ``encoding`` ``None``
    reads UTF-8 and decodes any line that is not as cp1252 (latin-1 when cp1252 fails), with a
    problem; any other encoding is used for every line. ``header`` (CSV/TSV only) forces the first
    row to be, or not to be, the header; ``None`` guesses. An empty file yields no batch.

    Raises :class:`UsageError` for bad arguments, :class:`InputError` when the file cannot be read
    at all (missing, unreadable, a Parquet footer that does not parse, a corrupt gzip stream), and
    :class:`UnsupportedFormatError` when detection finds no dataset format.
    """
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    if batch_rows < 1 or max_line_bytes < 1:
        raise UsageError("batch_rows and max_line_bytes must be positive")
    codec = check_encoding(encoding)
    if kind is None:
        kind = detect_kind(path)
    if kind in ("image", "image-folder"):
        yield from iter_image_batches(path, batch_rows=batch_rows)
        return
    if kind == "parquet":
        from garrison.data.readers_parquet import iter_parquet

        yield from iter_parquet(path, batch_rows=batch_rows)
        return
    dialect = None
    if kind in ("csv", "tsv"):
        head, _, _ = _read_head(path)
        dialect = sniff_dialect(head, tab=kind == "tsv")
    try:
        with _open(path) as (stream, progress):
            if dialect is not None:
                yield from iter_csv(
                    stream,
                    dialect=dialect,
                    header=header,
                    batch_rows=batch_rows,
                    max_line_bytes=max_line_bytes,
                    encoding=codec,
                    progress=progress,
                )
            elif kind == "jsonl":
                yield from iter_jsonl(
                    stream,
                    batch_rows=batch_rows,
                    max_line_bytes=max_line_bytes,
                    encoding=codec,
                    progress=progress,
                )
            else:
                yield from iter_text(
                    stream,
                    batch_rows=batch_rows,
                    max_line_bytes=max_line_bytes,
                    encoding=codec,
                    progress=progress,
                )
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: read failed: {exc}") from None
