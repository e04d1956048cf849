"""The format writers behind :func:`garrison.data.redact.redact_dataset`: one per dataset kind.

Each reads the source in bounded batches, hands the values of each column to the
:class:`~garrison.data.redact.ValueRedactor` and writes the result in the source's format:

- CSV/TSV: through :func:`~garrison.data.readers.iter_batches`, written back with :mod:`csv` using
  the sniffed delimiter and quote character, with the header when the source has one. A row with
  too few or too many fields is written at the header's width (the reader's problem says so); a
  record that cannot be read is not written.
- JSON Lines: each line parsed here and every string (and integer) leaf redacted in place with its
  dotted path as the column (``user.email``, ``tags.0``); a line with nothing to change is written
  as it was, byte for byte. A line that is not JSON is redacted as plain text, with a problem.
- Plain text: line by line.
- Parquet: row group by row group, string columns redacted, written with the source's schema.

Text output is UTF-8 with ``\\n`` line endings, gzip-compressed when the destination's name ends
in ``.gz``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from garrison.core.errors import InputError, UsageError
from garrison.data.readers import iter_batches
from garrison.data.readers_common import LineReader, ReadProblem
from garrison.data.readers_csv import SNIFF_BYTES, looks_like_header, sniff_dialect

if TYPE_CHECKING:
    from garrison.data.redact import ValueRedactor

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_LINE = 1 << 20


class Writer(Protocol):
    """Reads ``src``, redacts through the redactor, writes ``tmp``."""

    def __call__(
        self,
        src: Path,
        tmp: Path,
        redactor: ValueRedactor,
        *,
        compress: bool,
        drop: Sequence[str],
        batch_rows: int,
        progress: Callable[[int], None] | None,
    ) -> None: ...


@contextmanager
def _source(path: Path) -> Iterator[IO[bytes]]:
    """The file as a binary stream, decompressed when gzip."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    with raw:
        buffered = io.BufferedReader(cast(Any, raw), 1 << 20)
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as stream:
                yield cast(IO[bytes], stream)
        else:
            yield buffered


def _sink(tmp: Path, compress: bool) -> IO[str]:
    if compress:
        return cast(IO[str], gzip.open(tmp, "wt", encoding="utf-8", newline=""))
    return tmp.open("w", encoding="utf-8", newline="")


# ---------------------------------------------------------------- CSV / TSV and text


def _csv_layout(src: Path, tab: bool) -> tuple[Any, bool]:
    """The dialect of the file and whether its first record is a header."""
    with _source(src) as stream:
        head = stream.read(SNIFF_BYTES * 4)
    dialect = sniff_dialect(head, tab=tab)
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if len(head) >= SNIFF_BYTES * 4 and "\n" in text:
        text = text[: text.rindex("\n")]
    for fields in csv.reader(io.StringIO(text), dialect):
        if fields:
            return dialect, looks_like_header(fields)
    return dialect, False


def write_csv(
    src: Path,
    tmp: Path,
    redactor: ValueRedactor,
    *,
    compress: bool,
    drop: Sequence[str],
    batch_rows: int,
    progress: Callable[[int], None] | None,
    kind: str = "csv",
) -> None:
    """CSV or TSV: the same delimiter and quote character, the header when there is one."""
    dialect, header = _csv_layout(src, tab=kind == "tsv")
    with _sink(tmp, compress) as handle:
        out = csv.writer(
            handle,
            delimiter=dialect.delimiter,
            quotechar=dialect.quotechar or '"',
            doublequote=dialect.doublequote,
            escapechar=dialect.escapechar,
            lineterminator="\n",
            quoting=csv.QUOTE_MINIMAL,
        )
        keep: list[int] | None = None
        for batch in iter_batches(src, kind=kind, batch_rows=batch_rows, header=header):
            redactor.add_problems(batch.problems)
            redactor.bytes_read = batch.bytes_read
            columns = batch.columns or ()
            if keep is None:
                unknown = [name for name in drop if name not in columns]
                if unknown:
                    raise UsageError(
                        f"{src}: no column named {', '.join(map(repr, unknown))} to drop",
                        hint=f"the columns are {', '.join(columns)}",
                    )
                keep = [i for i, name in enumerate(columns) if name not in drop]
                if header:
                    out.writerow([columns[i] for i in keep])
            redactor.rows_read += len(batch.rows)
            cells: list[list[str | None]] = []
            changed: set[int] = set()
            for i in keep:
                new, touched = redactor.column(columns[i], [values[i] for _, values in batch.rows])
                cells.append(new)
                changed |= touched
            redactor.rows_changed += len(changed)
            for r in range(len(batch.rows)):
                out.writerow(["" if col[r] is None else col[r] for col in cells])
            redactor.rows_written += len(batch.rows)
            if progress is not None:
                progress(batch.bytes_read)


def write_tsv(src: Path, tmp: Path, redactor: ValueRedactor, **options: Any) -> None:
    """TSV: :func:`write_csv` with tabs."""
    write_csv(src, tmp, redactor, kind="tsv", **options)


def write_text(
    src: Path,
    tmp: Path,
    redactor: ValueRedactor,
    *,
    compress: bool,
    drop: Sequence[str],
    batch_rows: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Plain text, line by line; a line too long to read is not written."""
    del drop  # refused for text before this is called
    with _sink(tmp, compress) as handle:
        for batch in iter_batches(src, kind="text", batch_rows=batch_rows):
            redactor.add_problems(batch.problems)
            redactor.bytes_read = batch.bytes_read
            redactor.rows_read += len(batch.rows)
            new, changed = redactor.column(None, [values[0] for _, values in batch.rows])
            redactor.rows_changed += len(changed)
            handle.writelines(f"{line or ''}\n" for line in new)
            redactor.rows_written += len(batch.rows)
            if progress is not None:
                progress(batch.bytes_read)


# ---------------------------------------------------------------- JSON Lines


def _leaves(
    node: Any, path: str, drop: frozenset[str], found: list[tuple[Any, Any, str]], depth: int = 0
) -> bool:
    """Collect ``(container, key, path)`` of every string and integer leaf; remove dropped keys.

    Returns whether a key was dropped.
    """
    dropped = False
    if depth > 64:
        return False
    if isinstance(node, dict):
        for key in list(node):
            sub = f"{path}.{key}" if path else str(key)
            if sub in drop:
                del node[key]
                dropped = True
                continue
            value = node[key]
            if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                found.append((node, key, sub))
            elif isinstance(value, dict | list):
                dropped |= _leaves(value, sub, drop, found, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            sub = f"{path}.{index}" if path else str(index)
            if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                found.append((node, index, sub))
            elif isinstance(value, dict | list):
                dropped |= _leaves(value, sub, drop, found, depth + 1)
    return dropped


def _redact_lines(lines: list[tuple[int, str]], redactor: ValueRedactor, drop: frozenset[str]) -> list[str]:
    """The lines of one batch, redacted."""
    parsed: list[Any] = []
    touched: set[int] = set()
    by_path: dict[str | None, list[tuple[int, Any, Any]]] = {}
    out = [text for _, text in lines]
    for index, (number, text) in enumerate(lines):
        if not text.strip():
            parsed.append(None)
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            redactor.add_problems(
                [ReadProblem(row=number, byte_offset=None, column=None,
                             message=f"row {number}: not a JSON value; redacted as plain text")]
            )  # fmt: skip
            parsed.append(None)
            by_path.setdefault(None, []).append((index, lines, index))
            continue
        holder = {"value": value}
        found: list[tuple[Any, Any, str]] = []
        if _leaves(value if isinstance(value, dict | list) else holder, "", drop, found):
            touched.add(index)
        parsed.append(holder)
        for container, key, path in found:
            by_path.setdefault(path, []).append((index, container, key))
    as_text: set[int] = set()
    for where, refs in by_path.items():
        if where is None:
            new, changed = redactor.column(None, [lines[i][1] for i, _, _ in refs])
            for pos in changed:
                out[refs[pos][0]] = new[pos] or ""
                as_text.add(refs[pos][0])
            continue
        originals = [c[k] for _, c, k in refs]
        new, changed = redactor.column(where, [str(v) for v in originals])
        for pos in changed:
            index, container, key = refs[pos]
            container[key] = new[pos] if new[pos] or isinstance(originals[pos], str) else None
            touched.add(index)
    for index in touched:
        out[index] = json.dumps(parsed[index]["value"], ensure_ascii=False)
    redactor.rows_changed += len(touched | as_text)
    return out


def write_jsonl(
    src: Path,
    tmp: Path,
    redactor: ValueRedactor,
    *,
    compress: bool,
    drop: Sequence[str],
    batch_rows: int,
    progress: Callable[[int], None] | None,
) -> None:
    """JSON Lines: string leaves redacted in place, unchanged lines copied as they were."""
    dropping = frozenset(drop)
    with _source(src) as stream, _sink(tmp, compress) as handle:
        reader = LineReader(stream, max_line_bytes=_MAX_LINE, encoding=None)
        pending: list[tuple[int, str]] = []

        def flush() -> None:
            redactor.rows_read += sum(1 for _, text in pending if text.strip())
            for text in _redact_lines(pending, redactor, dropping):
                handle.write(text + "\n")
            redactor.rows_written += sum(1 for _, text in pending if text.strip())
            pending.clear()
            redactor.bytes_read = reader.offset
            if progress is not None:
                progress(reader.offset)

        for line in reader:
            if line.problem is not None:
                redactor.add_problems(
                    [ReadProblem(row=line.number, byte_offset=line.offset, column=None,
                                 message=f"row {line.number}: {line.problem}")]
                )  # fmt: skip
            if line.text is None:
                continue
            pending.append((line.number, line.text))
            if len(pending) >= batch_rows:
                flush()
        flush()


# ---------------------------------------------------------------- Parquet


def write_parquet(
    src: Path,
    tmp: Path,
    redactor: ValueRedactor,
    *,
    compress: bool,
    drop: Sequence[str],
    batch_rows: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Parquet, one row group at a time: string columns redacted, the schema kept."""
    del compress, batch_rows  # Parquet compresses itself; a row group is the unit
    from garrison.data.readers_parquet import _pyarrow

    pa, _, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(src)
        schema = parquet.schema_arrow
        groups = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{src}: not a readable Parquet file: {exc}") from None
    unknown = [name for name in drop if name not in schema.names]
    if unknown:
        raise UsageError(
            f"{src}: no column named {', '.join(map(repr, unknown))} to drop",
            hint=f"the columns are {', '.join(schema.names)}",
        )
    for name in drop:
        schema = schema.remove(schema.get_field_index(name))
    for item in schema:
        if not _is_text(pa, item.type):
            redactor.unscanned.setdefault(item.name, None)
    first = 1
    size = src.stat().st_size
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for index, count in enumerate(groups):
                try:
                    table = parquet.read_row_group(index, columns=schema.names)
                except (pa.ArrowException, OSError, ValueError) as exc:
                    redactor.add_problems(
                        [ReadProblem(row=first, byte_offset=None, column=None,
                                     message=f"row group {index} (rows {first}-{first + count - 1}) could "
                                     f"not be read; not written: {str(exc).splitlines()[0][:300]}")]
                    )  # fmt: skip
                    first += count
                    continue
                writer.write_table(_redact_table(pa, table, schema, redactor), row_group_size=max(count, 1))
                redactor.rows_read += table.num_rows
                redactor.rows_written += table.num_rows
                first += count
                redactor.bytes_read = size if index + 1 == len(groups) else 0
                if progress is not None:
                    progress(redactor.bytes_read)
    finally:
        parquet.close()
    redactor.bytes_read = size


def _is_text(pa: Any, kind: Any) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _redact_table(pa: Any, table: Any, schema: Any, redactor: ValueRedactor) -> Any:
    arrays = []
    changed: set[int] = set()
    for item in schema:
        column = table.column(item.name)
        if not _is_text(pa, item.type):
            arrays.append(column)
            continue
        plain = column.cast(item.type.value_type) if pa.types.is_dictionary(item.type) else column
        new, touched = redactor.column(item.name, plain.to_pylist())
        if touched:
            value_type = item.type.value_type if pa.types.is_dictionary(item.type) else item.type
            rebuilt = pa.array(new, type=value_type)
            if pa.types.is_dictionary(item.type):
                rebuilt = rebuilt.dictionary_encode().cast(item.type)
            column = rebuilt
        arrays.append(column)
        changed |= touched
    redactor.rows_changed += len(changed)
    return pa.Table.from_arrays(arrays, schema=schema)


WRITERS: dict[str, Writer] = {
    "csv": write_csv,
    "tsv": write_tsv,
    "jsonl": write_jsonl,
    "text": write_text,
    "parquet": write_parquet,
}
"""The writer for each dataset kind."""
