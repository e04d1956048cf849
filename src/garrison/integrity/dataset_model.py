"""Data model of dataset chunk digests: :class:`ChunkIndex`, its units and parts, and its JSON form.

Shared by the line chunker (:mod:`garrison.integrity.dataset_lines`), the Parquet indexer
(:mod:`garrison.integrity.dataset_parquet`) and the public module that drives and compares them
(:mod:`garrison.integrity.datasets`, which re-exports the public names here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from garrison.core.errors import InputError

Kind = Literal["lines", "parquet"]
Algorithm = Literal["sha256", "blake3"]

#: Version tag of the serialized form written by :meth:`ChunkIndex.to_dict`.
FORMAT = "garrison-chunks/1"
#: Bytes before each newline that decide whether a chunk may end there (with the line's length).
WINDOW = 64
_PARTS = ("schema", "footer", "other")
_HEX_LEN = 64  # SHA-256 and BLAKE3 both give 32 bytes


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One unit of a dataset file: a run of whole lines, or one Parquet row group."""

    index: int
    """Position in the file (the row group number for Parquet)."""
    byte_start: int
    """First byte (for Parquet: of the first column chunk)."""
    byte_end: int
    """One past the last byte (for Parquet: of the last column chunk)."""
    first_row: int
    """0-based row of the first byte: a line number, or a Parquet row index."""
    row_count: int
    """Rows the unit touches; a line longer than the maximum chunk is counted in each chunk it spans."""
    digest: str
    """Lower-case hex digest of the unit's bytes."""

    @property
    def end_row(self) -> int:
        """One past the last row the unit touches."""
        return self.first_row + self.row_count


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A Parquet part that holds no rows: ``schema``, ``footer`` or ``other``."""

    name: str
    """``schema`` (columns and key-value metadata), ``footer`` (raw bytes) or ``other`` (the rest)."""
    size: int
    """Bytes covered (for ``schema``: of its canonical JSON)."""
    digest: str
    """Lower-case hex digest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkIndex:
    """Digests of every unit of one dataset file, with the settings that produced them."""

    kind: Kind
    """``lines`` (content-defined chunks of lines) or ``parquet`` (row groups)."""
    algorithm: Algorithm
    """Hash algorithm of every digest."""
    avg_chunk: int | None
    """Target average chunk size in bytes (lines only)."""
    min_chunk: int | None
    """No chunk is shorter unless it is the last (lines only)."""
    max_chunk: int | None
    """No chunk is longer (lines only)."""
    size: int
    """File size in bytes."""
    rows: int
    """Lines in the file (a last line without a newline counts), or Parquet rows."""
    units: tuple[Chunk, ...]
    """Units in file order."""
    parts: tuple[Part, ...] = ()
    """Parquet parts holding no rows, in the order of ``_PARTS``; empty for lines."""

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form (a unit is ``[start, end, first_row, rows, digest]``)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "kind": self.kind,
            "alg": self.algorithm,
            "size": self.size,
            "rows": self.rows,
            "units": [[u.byte_start, u.byte_end, u.first_row, u.row_count, u.digest] for u in self.units],
        }
        if self.kind == "lines":
            out["params"] = {
                "avg": self.avg_chunk,
                "min": self.min_chunk,
                "max": self.max_chunk,
                "win": WINDOW,
            }
        else:
            out["parts"] = {p.name: [p.size, p.digest] for p in self.parts}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkIndex:
        """Rebuild an index from :meth:`to_dict` output; :class:`InputError` if malformed."""
        try:
            return _index_from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"malformed chunk index: {exc!r}") from exc


def _index_from_dict(data: Mapping[str, Any]) -> ChunkIndex:
    def bad(what: str) -> InputError:
        return InputError(f"malformed chunk index: {what}")

    if data["format"] != FORMAT:
        raise InputError(f"unknown chunk index format {data['format']!r}", hint=f"expected {FORMAT}")
    kind, algorithm = data["kind"], data["alg"]
    if kind not in ("lines", "parquet") or algorithm not in ("sha256", "blake3"):
        raise bad(f"unknown kind {kind!r} or algorithm {algorithm!r}")
    size, rows = _count(data["size"]), _count(data["rows"])
    units: list[Chunk] = []
    for i, raw in enumerate(data["units"]):
        start, end, first, count, digest = raw
        units.append(
            Chunk(
                index=i,
                byte_start=_count(start),
                byte_end=_count(end),
                first_row=_count(first),
                row_count=_count(count),
                digest=_hex(digest),
            )
        )
        if not units[-1].byte_start <= units[-1].byte_end <= size or units[-1].end_row > rows:
            raise bad(f"unit {i} lies outside the file")
    avg = lo = hi = None
    parts: tuple[Part, ...] = ()
    if kind == "lines":
        params = data["params"]
        avg, lo, hi = _count(params["avg"]), _count(params["min"]), _count(params["max"])
        if params["win"] != WINDOW or (avg, lo, hi) != _line_params(avg):
            raise bad(f"unsupported chunking parameters {dict(params)!r}")
        starts, ends = [u.byte_start for u in units], [u.byte_end for u in units]
        if starts != [0, *ends][: len(units)] or (ends[-1] if ends else 0) != size:
            raise bad("line chunks do not tile the file")
    else:
        raw_parts = data["parts"]
        if sorted(raw_parts) != sorted(_PARTS):
            raise bad(f"Parquet parts must be {', '.join(_PARTS)}")
        parts = tuple(
            Part(name=n, size=_count(raw_parts[n][0]), digest=_hex(raw_parts[n][1])) for n in _PARTS
        )
    return ChunkIndex(
        kind=cast(Kind, kind),
        algorithm=cast(Algorithm, algorithm),
        avg_chunk=avg,
        min_chunk=lo,
        max_chunk=hi,
        size=size,
        rows=rows,
        units=tuple(units),
        parts=parts,
    )


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise InputError(f"malformed chunk index: expected a count, got {value!r}")
    return value


def _hex(value: object) -> str:
    if not isinstance(value, str) or len(value) != _HEX_LEN or value.strip("0123456789abcdef"):
        raise InputError(f"malformed chunk index: expected a hex digest, got {value!r}")
    return value


def _line_params(avg: int) -> tuple[int, int, int]:
    return avg, max(1, avg // 4), avg * 4
