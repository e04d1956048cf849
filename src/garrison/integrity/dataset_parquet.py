"""Parquet row-group digests for :mod:`garrison.integrity.datasets`.

One unit per row group, covering the bytes of its column chunks, plus three parts holding no rows:
the raw footer, a digest of the schema, and every byte in neither. pyarrow is imported only when a
Parquet file is indexed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from io import FileIO
from typing import Any

from garrison.core.errors import InputError, MissingExtraError, ResourceLimitError
from garrison.integrity.dataset_model import Algorithm, Chunk, ChunkIndex, Part, _Hasher

_READ = 8 << 20  # bytes per read when hashing Parquet byte ranges
_FOOTER_LIMIT = 64 << 20  # a Parquet footer larger than this is refused


def _parquet_index(
    f: FileIO, name: str, size: int, algorithm: Algorithm, new: Callable[[], _Hasher]
) -> ChunkIndex:
    f.seek(size - 8)
    tail = f.read(8)
    if tail[4:] == b"PARE":
        raise InputError(f"{name}: Parquet file with an encrypted footer", hint="decrypt it first")
    footer_len = int.from_bytes(tail[:4], "little")
    footer_start = size - 8 - footer_len
    if footer_start < 4:
        raise InputError(f"{name}: Parquet footer length {footer_len} runs past the start of the file")
    if footer_len > _FOOTER_LIMIT:
        raise ResourceLimitError(
            f"{name}: Parquet footer of {footer_len} bytes", limit="parquet-footer-bytes", value=footer_len
        )
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("Parquet row-group digests", extra="data", module="pyarrow") from exc
    f.seek(0)
    try:
        meta = pq.ParquetFile(f).metadata
        groups, schema = _row_group_ranges(meta), _schema_json(meta)
    except (pyarrow.ArrowException, OSError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{name}: malformed Parquet metadata: {exc}") from exc

    flat = sorted((s, e) for ranges, _ in groups for s, e in ranges if e > s)
    prev_end = 4
    for s, e in flat:
        if s < prev_end or e > footer_start:
            raise InputError(f"{name}: Parquet column chunk at bytes {s}–{e} overlaps another or the footer")
        prev_end = e
    units: list[Chunk] = []
    first_row = 0
    for i, (ranges, rows) in enumerate(groups):
        hasher = new()
        for s, e in ranges:
            _hash_range(f, name, hasher, s, e)
        span = (min(s for s, _ in ranges), max(e for _, e in ranges)) if ranges else (0, 0)
        units.append(
            Chunk(
                index=i,
                byte_start=span[0],
                byte_end=span[1],
                first_row=first_row,
                row_count=rows,
                digest=hasher.hexdigest(),
            )
        )
        first_row += rows
    other, covered, at = new(), 0, 0
    for s, e in [*flat, (footer_start, footer_start)]:
        if s > at:
            _hash_range(f, name, other, at, s)
            covered += s - at
        at = e
    footer = new()
    _hash_range(f, name, footer, footer_start, size)
    schema_hasher = new()
    schema_hasher.update(memoryview(schema))
    parts = (
        Part(name="schema", size=len(schema), digest=schema_hasher.hexdigest()),
        Part(name="footer", size=size - footer_start, digest=footer.hexdigest()),
        Part(name="other", size=covered, digest=other.hexdigest()),
    )
    return ChunkIndex(
        kind="parquet",
        algorithm=algorithm,
        avg_chunk=None,
        min_chunk=None,
        max_chunk=None,
        size=size,
        rows=first_row,
        units=tuple(units),
        parts=parts,
    )


def _row_group_ranges(meta: Any) -> list[tuple[list[tuple[int, int]], int]]:
    """Sorted byte ranges of each row group's column chunks, and its row count."""
    groups = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows < 0:
            raise ValueError(f"row group {i} has {rg.num_rows} rows")
        ranges = []
        for j in range(rg.num_columns):
            col = rg.column(j)
            # the chunk starts at its dictionary page if any, else its first data page; writers
            # leave an absent page's offset at 0 (an empty row group has no data page)
            offsets = [int(col.data_page_offset)]
            if col.has_dictionary_page and col.dictionary_page_offset is not None:
                offsets.append(int(col.dictionary_page_offset))
            start = min((o for o in offsets if o > 0), default=0)
            length = int(col.total_compressed_size)
            if min(offsets) < 0 or length < 0 or (start == 0 and length > 0):
                raise ValueError(f"row group {i} column {j} has offsets {offsets} and size {length}")
            ranges.append((start, start + length))
        groups.append((sorted(ranges), int(rg.num_rows)))
    return groups


def _schema_json(meta: Any) -> bytes:
    """Canonical JSON of the columns (path, types, levels) and the key-value metadata."""
    schema = meta.schema
    columns = []
    for j in range(len(schema)):
        c = schema.column(j)
        columns.append(
            [c.path, c.physical_type, str(c.logical_type), c.max_definition_level, c.max_repetition_level]
        )
    kv = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (meta.metadata or {}).items()
    }
    return json.dumps({"columns": columns, "metadata": kv}, sort_keys=True, separators=(",", ":")).encode()


def _hash_range(f: FileIO, name: str, hasher: _Hasher, start: int, end: int) -> None:
    f.seek(start)
    buf = bytearray(min(_READ, max(0, end - start)))
    mv = memoryview(buf)
    left = end - start
    while left > 0:
        n = f.readinto(mv[: min(left, len(buf))])
        if not n:
            raise InputError(f"{name}: file ended at byte {end - left} while reading bytes {start}–{end}")
        hasher.update(mv[:n])
        left -= n
