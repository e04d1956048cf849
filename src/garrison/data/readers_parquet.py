"""Streaming Parquet, one row group at a time, through pyarrow.

Row numbers count rows from 1 across the whole file; they come from the row group metadata, so a row
group that cannot be read is skipped (with a problem) without shifting the numbers of the rows after
it. Memory is bounded by ``batch_rows`` rows plus the column chunks of one row group, which pyarrow
reads whole.

Every value becomes text: numbers, booleans, dates and times as pyarrow casts them to strings;
binary values as hexadecimal, cut at :data:`MAX_BINARY_BYTES` bytes; nested values (lists, structs,
maps) as JSON text; nulls as ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from garrison.core.errors import InputError, MissingExtraError
from garrison.data.readers_common import Batch, ReadProblem

MAX_BINARY_BYTES = 1024
"""Bytes of a binary value shown (as hexadecimal); longer values are cut and marked with ``…``."""


def _pyarrow() -> tuple[Any, Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("reading Parquet datasets", extra="data", module="pyarrow") from None
    return pa, pc, pq


def _hex(value: bytes | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_BINARY_BYTES:
        return value[:MAX_BINARY_BYTES].hex() + "…"
    return value.hex()


def column_text(array: Any) -> list[str | None]:
    """The values of one pyarrow array as text (``None`` for null)."""
    pa, pc, _ = _pyarrow()
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return [_hex(value) for value in array.to_pylist()]
    if pa.types.is_nested(kind):
        return [
            None if value is None else json.dumps(value, ensure_ascii=False, default=str)
            for value in array.to_pylist()
        ]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values: list[str | None] = array.to_pylist()
        return values
    try:
        cast: list[str | None] = pc.cast(array, pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [None if value is None else str(value) for value in array.to_pylist()]
    return cast


def iter_parquet(path: Path, *, batch_rows: int) -> Iterator[Batch]:
    """Batches of a Parquet file. Raises :class:`InputError` when its footer cannot be read."""
    pa, _, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(path)
        columns = tuple(parquet.schema_arrow.names)
        groups = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    size = path.stat().st_size
    first = 1
    try:
        for index, count in enumerate(groups):
            done = 0
            try:
                for record_batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[index]):
                    texts = [column_text(record_batch.column(i)) for i in range(record_batch.num_columns)]
                    numbers = range(first + done, first + done + record_batch.num_rows)
                    rows = tuple(zip(numbers, zip(*texts, strict=True), strict=True)) if texts else ()
                    done += record_batch.num_rows
                    yield Batch(
                        columns=columns, rows=rows, problems=(), bytes_read=_offset(parquet, index, size)
                    )
            except (pa.ArrowException, OSError, ValueError) as exc:
                last = first + count - 1
                problem = ReadProblem(
                    row=first + done,
                    byte_offset=None,
                    column=None,
                    message=f"row group {index} (rows {first + done}-{last}) could not be read; skipped: "
                    + str(exc).splitlines()[0][:300],
                )
                yield Batch(
                    columns=columns, rows=(), problems=(problem,), bytes_read=_offset(parquet, index, size)
                )
            first += count
    finally:
        parquet.close()


def _offset(parquet: Any, index: int, size: int) -> int:
    """Rough progress: where the row group after ``index`` starts, or the file size at the end."""
    if index + 1 >= parquet.num_row_groups:
        return size
    try:
        start = parquet.metadata.row_group(index + 1).column(0)
        return int(start.dictionary_page_offset or start.data_page_offset)
    except (IndexError, ValueError):
        return 0
