"""Infer a first draft of a :class:`~garrison.data.schema.Schema` from a sample of a dataset.

For each column, :func:`infer_schema` keeps the types of :data:`~garrison.data.schema_types.
INFERENCE_ORDER` that every non-null value in the sample parses as, and picks the first left
(integer, number, boolean, date, datetime), else string. It records whether any value was null, the
smallest and largest value of numeric and date columns, the allowed values of a string column that
looks categorical (at most :data:`MAX_CATEGORIES` distinct values, each seen at least twice on
average), and uniqueness when every value of an integer or string column was distinct. The draft
describes the sample: widen the bounds and lists before relying on it.
"""

from __future__ import annotations

from hashlib import blake2b
from pathlib import Path

from garrison.core.errors import UsageError
from garrison.data.readers import iter_batches
from garrison.data.schema import Bound, ColumnSchema, Schema
from garrison.data.schema_types import INFERENCE_ORDER, ColumnType, Value, is_null, parser

__all__ = ["MAX_CATEGORIES", "infer_schema"]

MAX_CATEGORIES = 20
"""The most distinct values a string column may have in the sample to get an ``allowed`` list."""


class _Profile:
    """What the sample showed of one column."""

    __slots__ = ("candidates", "digests", "distinct", "high", "low", "nulls", "values")

    def __init__(self) -> None:
        self.candidates = list(INFERENCE_ORDER)
        self.low: dict[ColumnType, Value] = {}
        self.high: dict[ColumnType, Value] = {}
        self.nulls = 0
        self.values = 0
        self.distinct: set[str] | None = set()
        self.digests: set[bytes] | None = set()

    def add(self, text: str | None) -> None:
        if text is None or is_null(text):
            self.nulls += 1
            return
        self.values += 1
        kept: list[ColumnType] = []
        for kind in self.candidates:
            value = parser(kind)(text)
            if value is None:
                continue
            kept.append(kind)
            if kind is not ColumnType.BOOLEAN:
                low, high = self.low.get(kind), self.high.get(kind)
                if low is None or value < low:  # type: ignore[operator]
                    self.low[kind] = value
                if high is None or value > high:  # type: ignore[operator]
                    self.high[kind] = value
        self.candidates = kept
        if self.distinct is not None:
            self.distinct.add(text)
            if len(self.distinct) > MAX_CATEGORIES:
                self.distinct = None
        if self.digests is not None:
            digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            if digest in self.digests:
                self.digests = None
            else:
                self.digests.add(digest)

    def column(self, name: str) -> ColumnSchema:
        kind = self.candidates[0] if self.candidates else ColumnType.STRING
        low: Bound | None = None
        high: Bound | None = None
        if kind not in (ColumnType.STRING, ColumnType.BOOLEAN) and self.values:
            low, high = self.low[kind], self.high[kind]  # type: ignore[assignment]
            if kind is ColumnType.NUMBER:
                low, high = float(low), float(high)  # type: ignore[arg-type]
        allowed = None
        if (
            kind is ColumnType.STRING
            and self.distinct is not None
            and len(self.distinct) > 0
            and self.values >= 2 * len(self.distinct)
        ):
            allowed = tuple(sorted(self.distinct))
        unique = (
            kind in (ColumnType.INTEGER, ColumnType.STRING)
            and self.digests is not None
            and self.values >= 2
            and allowed is None
        )
        return ColumnSchema(
            name=name,
            type=kind,
            nullable=self.nulls > 0 or self.values == 0,
            min=low,
            max=high,
            allowed=allowed,
            unique=unique,
        )


def infer_schema(path: Path, *, sample_rows: int = 100_000, kind: str | None = None) -> Schema:
    """A draft schema from the first ``sample_rows`` rows of the dataset at ``path``.

    Every column seen is required; extra columns are not allowed. Raises :class:`UsageError` for a
    plain text file (no columns) or a bad ``sample_rows``, and :class:`InputError` when the file
    cannot be read.
    """
    if sample_rows < 1:
        raise UsageError("sample_rows must be at least 1")
    profiles: dict[str, _Profile] = {}
    rows = 0
    for batch in iter_batches(path, kind=kind, batch_rows=min(sample_rows, 5_000)):
        if batch.columns is None:
            raise UsageError(f"{path}: plain text has no columns to infer a schema from")
        plan = [(i, profiles.setdefault(name, _Profile())) for i, name in enumerate(batch.columns)]
        for _, values in batch.rows:
            if rows >= sample_rows:
                break
            rows += 1
            for index, profile in plan:
                profile.add(values[index] if index < len(values) else None)
        if rows >= sample_rows:
            break
    columns = tuple(profile.column(name) for name, profile in profiles.items())
    return Schema(
        columns=columns,
        required_columns=tuple(profiles),
        allow_extra_columns=False,
        notes=(
            f"Inferred from the first {rows:,} row(s) of {path.name}: bounds, allowed values and",
            "uniqueness describe that sample only; widen them before relying on this file.",
        ),
    )
