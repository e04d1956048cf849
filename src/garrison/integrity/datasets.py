"""Content-defined digests of large dataset files, so a change report names the rows that changed.

A whole-file digest says only *that* a 40 GB CSV differs. :func:`chunk_digests` cuts one file into
units and hashes each, and :func:`compare_chunks` lines two such indexes up by digest to say *which*
row ranges or row groups changed, were inserted or were deleted.

The kind of file is decided by its content, never its name:

- **Parquet** (``PAR1`` at both ends): one unit per row group, covering the bytes of its column
  chunks, plus three parts: the raw footer, a digest of the schema (so a schema change is named as
  such), and every byte in neither (leading magic, page indexes, bloom filters, padding).
- **Anything else** is read as lines (CSV, JSON Lines, logs). Chunk boundaries fall only at line
  ends and are chosen by the content just before each newline, so an edit moves only the
  boundaries near it and later chunks come out identical (they *re-synchronise*).

Row numbers are 0-based line numbers for line files (a CSV header is row 0, so row *n* is the
*n*-th record as long as no quoted field holds a newline) and 0-based row indexes for Parquet.

The chunker for line files lives in :mod:`garrison.integrity.dataset_lines`, the Parquet indexer in
:mod:`garrison.integrity.dataset_parquet`, and the index classes in
:mod:`garrison.integrity.dataset_model`; this module holds the entry points, the comparison and its
rendering, and re-exports the public names.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Literal

from garrison.core.errors import InputError, UsageError
from garrison.integrity.dataset_lines import _BLOCK, _LineChunker
from garrison.integrity.dataset_model import (
    _PARTS,
    FORMAT,
    WINDOW,
    Algorithm,
    Chunk,
    ChunkIndex,
    Kind,
    Part,
    _line_params,
)
from garrison.integrity.dataset_parquet import _parquet_index
from garrison.integrity.manifest import _hasher_factory

Change = Literal["changed", "inserted", "deleted"]

#: Range of the automatically chosen average chunk size; ``avg_chunk`` may be set in [64 B, 64 MiB].
AUTO_AVG_RANGE = (64 << 10, 16 << 20)
_AVG_LIMITS = (64, 64 << 20)
_AUTO_DIVISOR = 1024  # file size / this, rounded down to a power of two: 1,024 to 2,048 chunks


def _auto_avg(size: int) -> int:
    lo, hi = AUTO_AVG_RANGE
    return min(hi, max(lo, 1 << max(0, (size // _AUTO_DIVISOR).bit_length() - 1)))


# ---------------------------------------------------------------------------------------- entry point


def chunk_digests(
    path: str | os.PathLike[str],
    *,
    algorithm: Algorithm = "sha256",
    avg_chunk: int | None = None,
    _block: int = _BLOCK,
) -> ChunkIndex:
    """Digest ``path`` unit by unit: row groups for Parquet, content-defined line chunks otherwise.

    ``avg_chunk`` (line files only) sets the average chunk size in bytes; by default it is the power
    of two giving 1,024 to 2,048 chunks, kept within :data:`AUTO_AVG_RANGE`. Minimum and maximum
    chunk sizes are a quarter and four times the average. Memory stays below about
    ``2 × (16 MiB + 4 × avg_chunk)`` whatever the file size (two read buffers: one is hashed on a
    second thread while the other is scanned).
    """
    new = _hasher_factory(algorithm)
    name = os.fspath(path)
    if avg_chunk is not None and not _AVG_LIMITS[0] <= avg_chunk <= _AVG_LIMITS[1]:
        raise UsageError(f"average chunk size must be between {_AVG_LIMITS[0]} and {_AVG_LIMITS[1]} bytes")
    if not os.path.isfile(name):
        raise UsageError(f"{name}: no such file, or not a regular file")
    try:
        with open(name, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4096)
            tail = b""
            if size >= 8:
                f.seek(size - 4)
                tail = f.read(4)
            f.seek(0)
            if head[:4] == b"PAR1" and tail in (b"PAR1", b"PARE"):
                return _parquet_index(f, name, size, algorithm, lambda: new(False))
            if head[:4] == b"PAR1" and b"\0" in head:  # binary, Parquet magic, no footer
                raise InputError(f"{name}: starts like Parquet but has no Parquet footer (truncated?)")
            avg = avg_chunk if avg_chunk is not None else _auto_avg(size)
            chunker = _LineChunker(_line_params(avg), lambda: new(False), _block)
            units, total, rows = chunker.run(f)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    avg, lo, hi = _line_params(avg)
    return ChunkIndex(
        kind="lines",
        algorithm=algorithm,
        avg_chunk=avg,
        min_chunk=lo,
        max_chunk=hi,
        size=total,
        rows=rows,
        units=tuple(units),
    )


def verify_chunks(old: ChunkIndex, path: str | os.PathLike[str]) -> ChunkDiff:
    """Digest ``path`` with ``old``'s settings and compare: what changed since ``old`` was made."""
    return compare_chunks(old, chunk_digests(path, algorithm=old.algorithm, avg_chunk=old.avg_chunk))


# ---------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangedRows:
    """A run of units that differs between two indexes."""

    change: Change
    """``changed`` (units replaced), ``inserted`` (only in new) or ``deleted`` (only in old)."""
    old_units: tuple[int, int]
    """Unit indexes in the old index, half-open (empty for an insertion: where it goes)."""
    new_units: tuple[int, int]
    """Unit indexes in the new index, half-open (empty for a deletion)."""
    old_rows: tuple[int, int]
    """Rows in old numbering, half-open; empty for an insertion (the old row it comes before)."""
    new_rows: tuple[int, int]
    """Rows in new numbering, half-open; empty for a deletion."""
    old_bytes: tuple[int, int]
    """Bytes in the old file, half-open."""
    new_bytes: tuple[int, int]
    """Bytes in the new file, half-open."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "change": self.change,
            "old_units": list(self.old_units),
            "new_units": list(self.new_units),
            "old_rows": list(self.old_rows),
            "new_rows": list(self.new_rows),
            "old_bytes": list(self.old_bytes),
            "new_bytes": list(self.new_bytes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkDiff:
    """What differs between two chunk indexes of the same kind and settings."""

    kind: Kind
    """Kind of both indexes."""
    old_size: int
    """Old file size in bytes."""
    new_size: int
    """New file size in bytes."""
    old_rows: int
    """Rows in the old file."""
    new_rows: int
    """Rows in the new file."""
    old_units: int
    """Units in the old index."""
    new_units: int
    """Units in the new index."""
    same_units: int
    """Units found unchanged in both."""
    regions: tuple[ChangedRows, ...]
    """Changed, inserted and deleted runs of units, in file order."""
    parts: tuple[str, ...]
    """Names of Parquet parts that differ (``schema``, ``footer``, ``other``)."""

    @property
    def identical(self) -> bool:
        """No unit and no part differs."""
        return not self.regions and not self.parts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_rows": self.old_rows,
            "new_rows": self.new_rows,
            "old_units": self.old_units,
            "new_units": self.new_units,
            "same_units": self.same_units,
            "regions": [r.to_dict() for r in self.regions],
            "parts": list(self.parts),
        }


def compare_chunks(old: ChunkIndex, new: ChunkIndex) -> ChunkDiff:
    """Line up ``old`` and ``new`` by digest and report the runs of units that differ.

    :class:`UsageError` if the two were made with a different kind, algorithm or chunk size: their
    digests could not be compared.
    """
    mine = (old.kind, old.algorithm, old.avg_chunk, old.min_chunk, old.max_chunk)
    theirs = (new.kind, new.algorithm, new.avg_chunk, new.min_chunk, new.max_chunk)
    if mine != theirs:
        raise UsageError(
            f"chunk indexes were made differently: {mine} vs {theirs}",
            hint="recompute the new index with the old one's settings (verify_chunks does)",
        )
    a, b = [u.digest for u in old.units], [u.digest for u in new.units]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    regions = []
    for tag, i0, i1, j0, j1 in matcher.get_opcodes():
        if tag == "equal":
            continue
        change: Change = "changed" if tag == "replace" else "inserted" if tag == "insert" else "deleted"
        regions.append(
            ChangedRows(
                change=change,
                old_units=(i0, i1),
                new_units=(j0, j1),
                old_rows=_rows(old, i0, i1),
                new_rows=_rows(new, j0, j1),
                old_bytes=_bytes(old, i0, i1),
                new_bytes=_bytes(new, j0, j1),
            )
        )
    same = sum(block.size for block in matcher.get_matching_blocks())
    old_parts, new_parts = {p.name: p.digest for p in old.parts}, {p.name: p.digest for p in new.parts}
    parts = tuple(n for n in _PARTS if old_parts.get(n) != new_parts.get(n))
    return ChunkDiff(
        kind=old.kind,
        old_size=old.size,
        new_size=new.size,
        old_rows=old.rows,
        new_rows=new.rows,
        old_units=len(a),
        new_units=len(b),
        same_units=same,
        regions=tuple(regions),
        parts=parts,
    )


def _rows(index: ChunkIndex, i0: int, i1: int) -> tuple[int, int]:
    if i0 == i1:
        at = index.units[i0].first_row if i0 < len(index.units) else index.rows
        return (at, at)
    return (index.units[i0].first_row, max(u.end_row for u in index.units[i0:i1]))


def _bytes(index: ChunkIndex, i0: int, i1: int) -> tuple[int, int]:
    if i0 == i1:
        at = index.units[i0].byte_start if i0 < len(index.units) else index.size
        return (at, at)
    return (index.units[i0].byte_start, index.units[i1 - 1].byte_end)


_PART_NOTES = {
    "schema": "schema changed (columns, types or key-value metadata)",
    "footer": "footer changed (it records row-group offsets, sizes and statistics, so it follows them)",
    "other": "bytes outside row groups and footer changed (page indexes, bloom filters, padding)",
}


def render_chunk_diff(diff: ChunkDiff) -> str:
    """Human-readable lines, one per changed region and part, after a summary line."""
    noun = "row groups" if diff.kind == "parquet" else "chunks"
    lines = [
        f"{diff.kind}: {diff.old_rows:,} → {diff.new_rows:,} rows, "
        f"{diff.old_size:,} → {diff.new_size:,} bytes; "
        f"{diff.same_units:,} of {diff.old_units:,} {noun} unchanged"
    ]
    if diff.identical:
        lines.append("no change")
    for r in diff.regions:
        lines.append(_region_line(diff.kind, r))
    lines.extend(_PART_NOTES[p] for p in diff.parts)
    return "\n".join(lines)


def _region_line(kind: Kind, r: ChangedRows) -> str:
    old_desc, new_desc = _describe(kind, r.old_units, r.old_rows), _describe(kind, r.new_units, r.new_rows)
    ob, nb = f"{r.old_bytes[0]:,}–{r.old_bytes[1]:,}", f"{r.new_bytes[0]:,}–{r.new_bytes[1]:,}"
    if r.change == "inserted":
        return f"{new_desc} inserted (new numbering; bytes {nb}), before old row {r.old_rows[0]:,}"
    if r.change == "deleted":
        return f"{old_desc} deleted (old numbering; bytes {ob}), before new row {r.new_rows[0]:,}"
    if old_desc == new_desc:
        return f"{old_desc} changed (bytes {ob} → {nb})"
    return f"{old_desc} changed (now {new_desc}; bytes {ob} → {nb})"


def _describe(kind: Kind, units: tuple[int, int], rows: tuple[int, int]) -> str:
    first, end = rows
    text = f"rows {first:,}–{end - 1:,}"
    if end - first < 2:
        text = "no rows" if end == first else f"row {first:,}"
    if kind == "lines":
        return text
    i0, i1 = units
    groups = f"row group {i0}" if i1 - i0 == 1 else f"row groups {i0}–{i1 - 1}"
    return f"{groups} ({text})"


__all__ = [
    "FORMAT",
    "WINDOW",
    "ChangedRows",
    "Chunk",
    "ChunkDiff",
    "ChunkIndex",
    "Part",
    "chunk_digests",
    "compare_chunks",
    "render_chunk_diff",
    "verify_chunks",
]
