"""Personal data and secrets in a dataset, column by column: the scan behind GAR-PII and GAR-SEC.

:func:`profile_dataset` streams a dataset (:mod:`garrison.data.readers`) and runs the recognizers
(:mod:`garrison.data.pii`) over every value, with the column name as context. The result is a
per-column summary: which columns hold which kind of personal data or secret, in how many rows,
the first rows, and masked examples. It is the Python API for notebooks and the body of the
:class:`~garrison.data.detector.PersonalDataDetector`.

Speed: the values of one column in one batch are joined with a line break and scanned as one text,
and each match is mapped back to its row with a binary search over the value offsets; a match that
would span two values is dropped. That keeps the per-value Python overhead out of the loop.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from garrison.data.pii import Scanner, mask
from garrison.data.pii_types import Entity, Match
from garrison.data.readers import detect_kind, iter_batches
from garrison.data.readers_common import ReadProblem

#: Rows, examples and problems kept per finding: enough to act on, bounded whatever the data size.
KEEP_ROWS = 5
KEEP_EXAMPLES = 3
KEEP_PROBLEMS = 20


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
    """``(row, value, match)`` for every match in the values of one column (one joined scan)."""
    starts: list[int] = []
    parts: list[str] = []
    pos = 0
    for _, value in values:
        starts.append(pos)
        parts.append(value)
        pos += len(value) + 1
    text = "\n".join(parts)
    out: list[tuple[int, str, Match]] = []
    for m in scanner.scan(text, column=column):
        i = bisect.bisect_right(starts, m.start) - 1
        row, value = values[i]
        offset = starts[i]
        if m.end > offset + len(value):
            continue  # spans two values: not a value of this row
        local = Match(
            entity=m.entity,
            kind=m.kind,
            start=m.start - offset,
            end=m.end - offset,
            score=m.score,
            validated=m.validated,
            country=m.country,
        )
        out.append((row, value, local))
    return out


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
        for index, column in enumerate(columns):
            values = [(row, vals[index]) for row, vals in batch.rows if index < len(vals) and vals[index]]
            if values:
                _record(profile, column, _scan_column(scanner, column, values))  # type: ignore[arg-type]
        if progress is not None:
            progress(batch.bytes_read)
    profile.columns = tuple(seen_columns)
    return profile


def _record(profile: DataProfile, column: str | None, found: list[tuple[int, str, Match]]) -> None:
    rows_seen: dict[tuple[str | None, Entity], set[int]] = {}
    for row, value, match in found:
        key = (column, match.entity)
        entry = profile.findings.get(key)
        if entry is None:
            entry = profile.findings[key] = ColumnFinding(column=column, entity=match.entity)
        entry.matches += 1
        entry.validated += match.validated
        entry.kinds[match.kind] += 1
        rows = rows_seen.setdefault(key, set())
        if row not in rows:
            rows.add(row)
            entry.rows += 1
            if len(entry.first_rows) < KEEP_ROWS:
                entry.first_rows.append(row)
        if len(entry.examples) < KEEP_EXAMPLES:
            masked = mask(value, match)
            if masked not in entry.examples:
                entry.examples.append(masked)


__all__ = ["KEEP_EXAMPLES", "KEEP_PROBLEMS", "KEEP_ROWS", "ColumnFinding", "DataProfile", "profile_dataset"]
