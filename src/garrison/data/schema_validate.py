"""Check a dataset against a :class:`~garrison.data.schema.Schema`, streaming, in bounded memory.

:func:`validate` reads the file batch by batch (:func:`~garrison.data.readers.iter_batches`) and
keeps, per column and check, the number of rows that fail it, the first row numbers and a few
example values. Examples are personal data as often as not, so each one is run through the PII
scanner and masked (:func:`~garrison.recognizers.pii.mask`) before it is kept; a long value is kept only as
its length.

Uniqueness is checked exactly with a set of 8-byte BLAKE2b digests of the values (about 60 bytes of
memory each), up to ``unique_cap`` digests in all; past the cap, values already seen are still
caught as duplicates but new ones are no longer remembered, and the result says from which row the
check was partial. The default cap of ten million values bounds that memory at about 600 MB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path

from garrison.core.errors import UsageError
from garrison.data.readers import ReadProblem, iter_batches
from garrison.data.schema import MAX_REGEX_INPUT, ColumnSchema, Schema
from garrison.data.schema_types import ColumnType, Value, describe, is_null, parser
from garrison.recognizers.pii import Scanner, mask

__all__ = ["CHECKS", "CheckViolations", "ValidationResult", "validate"]

CHECKS: tuple[str, ...] = ("nullable", "type", "range", "length", "allowed", "regex", "unique")
"""The checks a column can fail, in the order they are reported."""
UNIQUE_CAP = 10_000_000
"""Distinct values remembered for uniqueness checks, across all unique columns, by default."""
_FIRST_ROWS = 10
_EXAMPLE_CHARS = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckViolations:
    """The rows of one column that failed one check."""

    column: str
    """The column."""
    check: str
    """Which check: one of :data:`CHECKS`."""
    expected: str
    """What the schema asks for, in words (``integer``, ``between 0 and 120``...)."""
    count: int
    """How many rows failed it."""
    first_rows: tuple[int, ...]
    """The first rows that failed it (row numbers as the reader counts them)."""
    examples: tuple[str, ...]
    """A few failing values, personal data masked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult:
    """What :func:`validate` found."""

    path: Path
    """The dataset."""
    rows: int
    """Rows read."""
    columns: tuple[str, ...]
    """The dataset's columns, in order first seen."""
    violations: tuple[CheckViolations, ...]
    """Failed checks, by column in schema order then by check."""
    missing_columns: tuple[str, ...]
    """Required columns the dataset does not have."""
    unexpected_columns: tuple[str, ...]
    """Columns the schema does not declare, when it does not allow extra columns."""
    read_problems: tuple[ReadProblem, ...]
    """The first problems met while reading (malformed rows), at most 20."""
    read_problem_count: int
    """How many read problems there were in all."""
    problems: tuple[str, ...] = field(default=())
    """Checks that could not be done in full (uniqueness past its memory cap)."""

    @property
    def valid(self) -> bool:
        """Whether the dataset passed every check (read problems do not count)."""
        return not (self.violations or self.missing_columns or self.unexpected_columns)


class _Tally:
    __slots__ = ("count", "examples", "expected", "rows")

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.count = 0
        self.rows: list[int] = []
        self.examples: list[str] = []


class _Examples:
    """Makes the example values a result keeps: masked where the PII scanner flags them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._scanner: Scanner | None = None

    def safe(self, value: str, column: str) -> str:
        if len(value) > _EXAMPLE_CHARS:
            return f"…({len(value):,} chars)"
        if self._scanner is None:
            self._scanner = Scanner()
        text = value
        for match in sorted(self._scanner.scan(value, column=column), key=lambda m: -m.start):
            text = text[: match.start] + mask(value, match) + text[match.end :]
        return repr(text)


class _Unique:
    """Exact uniqueness by 8-byte digests, sharing one cap across columns."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.partial: dict[str, int] = {}

    def seen(self, digests: set[bytes], column: str, row: int, text: str) -> bool:
        digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if digest in digests:
            return True
        if self.size < self.cap:
            digests.add(digest)
            self.size += 1
        elif column not in self.partial:
            self.partial[column] = row
        return False


def _range_text(column: ColumnSchema) -> str:
    low, high = column.min, column.max
    if low is not None and high is not None:
        return f"between {describe(low)} and {describe(high)}"
    return f">= {describe(low)}" if low is not None else f"<= {describe(high)}"


def _length_text(column: ColumnSchema) -> str:
    low, high = column.min_length, column.max_length
    if low is not None and high is not None:
        return f"{low} to {high} characters"
    return f"at least {low} characters" if low is not None else f"at most {high} characters"


class _Column:
    """One declared column, compiled: its checks as closures over the schema's values."""

    def __init__(self, spec: ColumnSchema, examples: _Examples, unique: _Unique) -> None:
        self.spec = spec
        self.examples = examples
        self.unique = unique
        self.tallies: dict[str, _Tally] = {}
        self.parse: Callable[[str], Value | None] = parser(spec.type)
        self.digests: set[bytes] = set()
        self.pattern = re.compile(spec.regex) if spec.regex is not None else None
        self.allowed = frozenset(self.parse(a) for a in spec.allowed) if spec.allowed is not None else None
        self.ranged = spec.type is not ColumnType.STRING and (spec.min is not None or spec.max is not None)
        self.sized = spec.min_length is not None or spec.max_length is not None
        self.expected = {
            "nullable": "a value (not nullable)",
            "type": spec.type.value,
            "range": _range_text(spec) if self.ranged else "",
            "length": _length_text(spec) if self.sized else "",
            "allowed": "one of " + ", ".join(spec.allowed or ()),
            "regex": f"to match {spec.regex}",
            "unique": "unique values",
        }

    def fail(self, check: str, row: int, text: str | None) -> None:
        tally = self.tallies.get(check)
        if tally is None:
            tally = self.tallies[check] = _Tally(self.expected[check])
        tally.count += 1
        if len(tally.rows) < _FIRST_ROWS:
            tally.rows.append(row)
        if text is not None and len(tally.examples) < self.examples.limit:
            example = self.examples.safe(text, self.spec.name)
            if example not in tally.examples:
                tally.examples.append(example)

    def check(self, row: int, text: str | None) -> None:
        spec = self.spec
        if text is None or is_null(text):
            if not spec.nullable:
                self.fail("nullable", row, None)
            return
        value = self.parse(text)
        if value is None:
            self.fail("type", row, text)
        elif self.ranged:
            bound_low, bound_high = spec.min, spec.max
            try:
                if (bound_low is not None and value < bound_low) or (  # type: ignore[operator]
                    bound_high is not None and value > bound_high  # type: ignore[operator]
                ):
                    self.fail("range", row, text)
            except TypeError:  # a bound of the wrong kind for the value; cannot happen after loading
                self.fail("range", row, text)
        if self.sized:
            size = len(text)
            if (spec.min_length is not None and size < spec.min_length) or (
                spec.max_length is not None and size > spec.max_length
            ):
                self.fail("length", row, text)
        if self.allowed is not None and value is not None and value not in self.allowed:
            self.fail("allowed", row, text)
        if self.pattern is not None and (len(text) > MAX_REGEX_INPUT or not self.pattern.fullmatch(text)):
            self.fail("regex", row, text)
        if spec.unique and self.unique.seen(self.digests, spec.name, row, text):
            self.fail("unique", row, text)

    def results(self) -> list[CheckViolations]:
        return [
            CheckViolations(
                column=self.spec.name,
                check=check,
                expected=self.tallies[check].expected,
                count=self.tallies[check].count,
                first_rows=tuple(self.tallies[check].rows),
                examples=tuple(self.tallies[check].examples),
            )
            for check in CHECKS
            if check in self.tallies
        ]


def validate(
    path: Path,
    schema: Schema,
    *,
    max_examples: int = 5,
    unique_cap: int = UNIQUE_CAP,
    kind: str | None = None,
    batch_rows: int = 5_000,
) -> ValidationResult:
    """Check the dataset at ``path`` against ``schema``, reading it once, in bounded memory.

    Raises :class:`UsageError` for a plain text file (it has no columns) or bad arguments, and the
    readers' :class:`InputError` when the file cannot be read at all.
    """
    if max_examples < 0 or unique_cap < 0:
        raise UsageError("max_examples and unique_cap must not be negative")
    examples = _Examples(max_examples)
    unique = _Unique(unique_cap)
    compiled = {spec.name: _Column(spec, examples, unique) for spec in schema.columns}
    seen: dict[str, None] = {}
    rows = 0
    problems: list[ReadProblem] = []
    problem_count = 0
    layout: tuple[str, ...] | None = None
    plan: list[tuple[int, _Column]] = []
    for batch in iter_batches(path, kind=kind, batch_rows=batch_rows):
        problem_count += len(batch.problems)
        problems.extend(batch.problems[: max(0, 20 - len(problems))])
        if batch.columns is None:
            raise UsageError(f"{path}: plain text has no columns to check against a schema")
        if batch.columns != layout:
            layout = batch.columns
            seen.update(dict.fromkeys(layout))
            plan = [(i, compiled[name]) for i, name in enumerate(layout) if name in compiled]
        for number, values in batch.rows:
            rows += 1
            for index, column in plan:
                column.check(number, values[index] if index < len(values) else None)
    columns = tuple(seen)
    present = set(columns)
    declared = {spec.name for spec in schema.columns}
    notes = [
        f"column {name!r}: uniqueness checked in full only up to row {row:,}; "
        f"the limit of {unique.cap:,} remembered values was reached"
        for name, row in unique.partial.items()
    ]
    return ValidationResult(
        path=path,
        rows=rows,
        columns=columns,
        violations=tuple(v for c in compiled.values() for v in c.results()),
        missing_columns=tuple(c for c in schema.required_columns if c not in present),
        unexpected_columns=()
        if schema.allow_extra_columns
        else tuple(c for c in columns if c not in declared),
        read_problems=tuple(problems),
        read_problem_count=problem_count,
        problems=tuple(notes),
    )
