"""Personal data and secrets in a dataset, column by column: the scan behind GAR-PII and GAR-SEC.

:func:`profile_dataset` streams a dataset (:mod:`garrison.data.readers`) and runs the recognizers
(:mod:`garrison.recognizers.pii`) over every value, with the column name as context. The result is a
per-column summary: which columns hold which kind of personal data or secret, in how many rows,
the first rows, and masked examples. It is the Python API for notebooks and the body of the
:class:`~garrison.data.detector.PersonalDataDetector`.

Speed: the distinct values of one column in one batch are scanned together with
:meth:`~garrison.recognizers.pii.Scanner.scan_many` (joined with a NUL character, which no recognizer looks
across, and mapped back to their rows): the same matches as scanning each value alone, without the
per-value Python overhead. A value seen before in the same column is not scanned again.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from garrison.data.readers import detect_kind, iter_batches
from garrison.data.readers_common import ReadProblem
from garrison.recognizers.pii import Scanner, mask
from garrison.recognizers.pii_types import Entity, Match

#: Rows, examples and problems kept per finding: enough to act on, bounded whatever the data size.
KEEP_ROWS = 5
KEEP_EXAMPLES = 3
KEEP_PROBLEMS = 20
#: Values of at most this many characters are remembered with their matches, at most
#: ``MEMO_ENTRIES`` per column (see :class:`_ColumnMemo`).
MEMO_VALUE_CHARS = 64
MEMO_ENTRIES = 1 << 14


@dataclass(slots=True, kw_only=True)
class ColumnFinding:
    """One kind of personal data or secret in one column (or in a text file's lines)."""

    column: str | None
    """The column; ``None`` for plain text."""
    entity: Entity
    """What was found."""
    rows: int = 0
    """Rows with at least one match."""
    matches: int = 0
    """Matches in all."""
    validated: int = 0
    """Matches whose checksum or library validation passed."""
    kinds: Counter[str] = field(default_factory=Counter)
    """Finer kinds (``us-ssn``, ``visa``, ``aws-access-key``) and their counts."""
    first_rows: list[int] = field(default_factory=list)
    """The first rows where it was found (at most :data:`KEEP_ROWS`)."""
    examples: list[str] = field(default_factory=list)
    """Masked examples (at most :data:`KEEP_EXAMPLES`); never the value itself."""


@dataclass(slots=True, kw_only=True)
class DataProfile:
    """What :func:`profile_dataset` found in one file."""

    path: Path
    """The file."""
    kind: str
    """``csv``, ``tsv``, ``jsonl``, ``parquet`` or ``text``."""
    rows: int = 0
    """Data rows read."""
    columns: tuple[str, ...] = ()
    """Every column seen, in order of first appearance."""
    findings: dict[tuple[str | None, Entity], ColumnFinding] = field(default_factory=dict)
    """Per (column, entity)."""
    problems: list[ReadProblem] = field(default_factory=list)
    """The first :data:`KEEP_PROBLEMS` read problems."""
    problem_count: int = 0
    """All read problems."""
    bytes_read: int = 0
    """Bytes of the file consumed."""

    def share(self, finding: ColumnFinding) -> float:
        """Fraction of the rows that hold the finding's data."""
        return finding.rows / self.rows if self.rows else 0.0


def _scan_column(
    scanner: Scanner, column: str | None, values: Sequence[tuple[int, str]]
) -> list[tuple[int, str, Match]]:
    """``(key, value, match)`` for every match in ``values``, offsets relative to the value.

    ``values`` are ``(key, value)`` pairs of one column, scanned together with
    :meth:`Scanner.scan_many` (the redactor uses it too).
    """
    found = scanner.scan_many([value for _, value in values], column=column)
    return [(key, value, m) for (key, value), matches in zip(values, found, strict=True) for m in matches]


class _ColumnMemo:
    """The matches of values already scanned, per column: tables repeat values (names, countries, codes).

    A value's matches depend only on the value and its column (:meth:`Scanner.scan_many` scans each
    value as if alone), so a repeated value is looked up, not scanned again. Short values only, at
    most :data:`MEMO_ENTRIES` per column, and a column whose values hardly repeat (ids, e-mails)
    stops being remembered once that is clear: memory stays small whatever the file.
    """

    __slots__ = ("_found", "_known", "_looked")

    def __init__(self) -> None:
        self._known: dict[str | None, dict[str, tuple[Match, ...]]] = {}
        self._looked: dict[str | None, int] = {}
        self._found: dict[str | None, int] = {}

    def scan(
        self, scanner: Scanner, column: str | None, rows: Sequence[int], values: Sequence[str | None]
    ) -> list[tuple[int, str, Match]]:
        """``(row, value, match)`` for every match in one column, by row; empty values are skipped."""
        known = self._known.setdefault(column, {})
        if len(known) + len(values) > MEMO_ENTRIES:
            known.clear()
        get = known.get
        out: list[tuple[int, str, Match]] = []
        pending: list[tuple[int, str]] = []
        for row, value in zip(rows, values, strict=True):
            if not value:
                continue
            matches = get(value)
            if matches is None:
                pending.append((row, value))
            elif matches:
                out.extend((row, value, m) for m in matches)
        looked = self._looked[column] = self._looked.get(column, 0) + len(values)
        hits = self._found[column] = self._found.get(column, 0) + len(values) - len(pending)
        if not pending:
            return out
        fresh = list(dict.fromkeys(value for _, value in pending))
        found = dict(zip(fresh, map(tuple, scanner.scan_many(fresh, column=column)), strict=True))
        if looked <= MEMO_ENTRIES // 4 or hits * 8 >= looked:  # worth remembering: values repeat
            for value, matches in found.items():
                if len(value) <= MEMO_VALUE_CHARS:
                    known[value] = matches
        elif known:
            known.clear()
        tail = [(row, value, m) for row, value in pending for m in found[value]]
        if not out:
            return tail
        out.extend(tail)
        out.sort(key=_row)  # stable: a row's matches keep their order
        return out


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Hold the cycle collector off while one batch is scanned, then restore it as it was.

    A batch allocates a few hundred thousand short-lived objects (matches, rows, offsets) that free
    themselves by reference counting; collecting meanwhile would move them to older generations and
    trigger full collections over the scanner's caches, a quarter of the scan time. The batch builds
    no reference cycles, so nothing is left for the collector that it would have freed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _row(item: tuple[int, str, Match]) -> int:
    return item[0]


def _columns_of(
    batch_rows: Sequence[tuple[int, Sequence[str | None]]], width: int
) -> tuple[list[int], list[Sequence[str | None]]]:
    """Row numbers and the values of each of ``width`` columns (missing cells are None)."""
    rows = [row for row, _ in batch_rows]
    cells = [vals for _, vals in batch_rows]
    if all(len(vals) == width for vals in cells):
        return rows, list(zip(*cells, strict=True)) if cells else [() for _ in range(width)]
    return rows, [[vals[i] if i < len(vals) else None for vals in cells] for i in range(width)]


def profile_dataset(
    path: Path,
    *,
    scanner: Scanner | None = None,
    batch_rows: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> DataProfile:
    """Scan every value of the dataset at ``path`` for personal data and secrets.

    Memory is bounded by one batch of rows plus the bounded summary. ``progress`` is called with
    the bytes consumed so far after each batch. Raises what :func:`~garrison.data.readers.iter_batches`
    raises for a file that cannot be read at all; problems with single rows are collected instead.
    """
    scanner = scanner or Scanner()
    kind = detect_kind(path)
    profile = DataProfile(path=path, kind=kind)
    seen_columns: dict[str, None] = {}
    memo = _ColumnMemo()
    for batch in iter_batches(path, kind=kind, batch_rows=batch_rows):
        profile.rows += len(batch.rows)
        profile.bytes_read = batch.bytes_read
        profile.problem_count += len(batch.problems)
        room = KEEP_PROBLEMS - len(profile.problems)
        if room > 0:
            profile.problems.extend(batch.problems[:room])
        columns: Sequence[str | None] = batch.columns if batch.columns is not None else (None,)
        for name in batch.columns or ():
            seen_columns.setdefault(name, None)
        with _no_cycle_collection():
            rows, by_column = _columns_of(batch.rows, len(columns))
            for column, values in zip(columns, by_column, strict=True):
                found = memo.scan(scanner, column, rows, values)
                if found:
                    _record(profile, column, found)
        if progress is not None:
            progress(batch.bytes_read)
    profile.columns = tuple(seen_columns)
    return profile


def _record(profile: DataProfile, column: str | None, found: list[tuple[int, str, Match]]) -> None:
    """Add one batch's matches of one column (in row order) to the profile."""
    rows_seen: dict[Entity, set[int]] = {}
    kinds: dict[Entity, Counter[str]] = {}
    for row, value, match in found:
        entity = match.entity
        rows = rows_seen.get(entity)
        if rows is None:
            rows = rows_seen[entity] = set()
            kinds[entity] = Counter()
        entry = profile.findings.get((column, entity))
        if entry is None:
            entry = profile.findings[(column, entity)] = ColumnFinding(column=column, entity=entity)
        entry.matches += 1
        entry.validated += match.validated
        kinds[entity][match.kind] += 1
        if row not in rows:
            rows.add(row)
            if len(entry.first_rows) < KEEP_ROWS:
                entry.first_rows.append(row)
        if len(entry.examples) < KEEP_EXAMPLES:
            masked = mask(value, match)
            if masked not in entry.examples:
                entry.examples.append(masked)
    for entity, rows in rows_seen.items():
        entry = profile.findings[(column, entity)]
        entry.rows += len(rows)
        entry.kinds.update(kinds[entity])


__all__ = ["KEEP_EXAMPLES", "KEEP_PROBLEMS", "KEEP_ROWS", "ColumnFinding", "DataProfile", "profile_dataset"]
