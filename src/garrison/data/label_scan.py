"""Label issues in a dataset file: load it, fit out-of-sample, and find the rows probably mislabelled.

:func:`label_scan` reads the dataset once (:func:`garrison.data.readers.iter_batches`) into a numeric
feature matrix and a label vector, then runs confident learning
(:func:`garrison.data.labels.out_of_sample_probabilities` and
:func:`garrison.data.labels.find_label_issues`). Unlike the streaming checks, the model fit holds the
whole dataset in memory, so the number of rows is bounded (``max_rows``) and a larger file is refused
rather than sampled silently.

- Features: the named columns (``features``), or else every column other than the label whose first
  non-empty value is a number; ``exclude`` removes columns from either. A feature value that is not a
  number is a :class:`UsageError` naming the column and the row. Empty values (and ``nan``) are
  imputed with the column mean, with a note.
- Labels: the label column's text values, mapped to ``0 .. K-1`` in sorted order (numerically when
  every label is a number). Rows without a label are left out, with a note.
- Issues carry the reader's row numbers (for CSV the header is row 0) and the original label texts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from garrison.core.errors import InputError, UsageError
from garrison.data.labels import METHODS, Method

__all__ = ["DEFAULT_MAX_ROWS", "LabelRowIssue", "LabelScanResult", "label_scan"]

DEFAULT_MAX_ROWS = 100_000
"""Default bound on the rows loaded for the model fit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelRowIssue:
    """One row of the dataset whose label is probably wrong."""

    row: int
    """The row number the reader gave the row (CSV: the first row under the header is 1)."""
    given: str
    """The label the dataset gives the row, as written in the file."""
    suggested: str
    """The label the model finds most probable other than the given one."""
    given_probability: float
    """Out-of-sample predicted probability of the given label."""
    suggested_probability: float
    """Out-of-sample predicted probability of the suggested label."""
    score: float
    """Ranking score, lower is more likely mislabelled (normalized margin)."""
    reason: str
    """One line a person can read, with the label texts."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "row": self.row,
            "given": self.given,
            "suggested": self.suggested,
            "given_probability": round(self.given_probability, 6),
            "suggested_probability": round(self.suggested_probability, 6),
            "score": round(self.score, 6),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelScanResult:
    """The label issues of one dataset file and what they were found from."""

    path: Path
    """The dataset file."""
    label: str
    """The label column."""
    features: tuple[str, ...]
    """The feature columns the model was fitted on, in file order."""
    classes: tuple[str, ...]
    """The label texts; the position of each is the class index the model used."""
    rows: int
    """Rows examined (with a label)."""
    skipped_rows: int
    """Rows left out because they had no label."""
    method: str
    """The pruning method (one of :data:`garrison.data.labels.METHODS`)."""
    estimated_issue_count: int
    """How many rows the calibrated confident joint says are mislabelled."""
    issues: tuple[LabelRowIssue, ...]
    """The flagged rows, most likely mislabelled first."""
    notes: tuple[str, ...] = ()
    """What was done to the data on the way (imputation, columns left out, read problems)."""

    @property
    def share(self) -> float:
        """Flagged rows as a share of the rows examined."""
        return len(self.issues) / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "path": str(self.path),
            "label": self.label,
            "features": list(self.features),
            "classes": list(self.classes),
            "rows": self.rows,
            "skipped_rows": self.skipped_rows,
            "method": self.method,
            "issue_count": len(self.issues),
            "issue_share": round(self.share, 6),
            "estimated_issue_count": self.estimated_issue_count,
            "issues": [issue.to_dict() for issue in self.issues],
            "notes": list(self.notes),
        }


_MISSING = math.nan


class _Column:
    """One candidate feature column: its values as floats, and whether it is still a candidate."""

    __slots__ = ("first_row", "missing", "name", "state", "values")

    def __init__(self, name: str, rows_before: int) -> None:
        self.name = name
        self.values: list[float] = [_MISSING] * rows_before
        self.missing = rows_before
        self.state = "unknown"  # unknown (only empty so far), numeric, text (left out)
        self.first_row: int | None = None


def _parse(text: str | None) -> float | None:
    """The number in ``text``; ``nan`` for an empty value; ``None`` when it is not a number."""
    if text is None or not text.strip():
        return _MISSING
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else _MISSING


class _Loader:
    """Collects the label texts, row numbers and numeric feature values, batch by batch."""

    def __init__(
        self, path: Path, label: str, features: Sequence[str] | None, exclude: set[str], max_rows: int
    ) -> None:
        self.path = path
        self.label = label
        self.named = list(dict.fromkeys(features)) if features else None
        self.exclude = exclude
        self.max_rows = max_rows
        self.columns: dict[str, _Column] = {}
        self.seen: set[str] = set()
        self.row_numbers: list[int] = []
        self.labels: list[str] = []
        self.skipped = 0
        self.problems = 0
        self.first_problem: str | None = None

    def _wanted(self, name: str) -> bool:
        if name == self.label or name in self.exclude:
            return False
        return self.named is None or name in self.named

    def add(self, columns: Sequence[str], rows: Sequence[tuple[int, tuple[str | None, ...]]]) -> None:
        index = {name: i for i, name in enumerate(columns)}
        self.seen.update(columns)
        for name in columns:
            if name not in self.columns and self._wanted(name):
                self.columns[name] = _Column(name, len(self.labels))
        li = index.get(self.label)
        where = [(column, index.get(column.name)) for column in self.columns.values()]
        for number, values in rows:
            given = values[li] if li is not None and li < len(values) else None
            if given is None or not given.strip():
                self.skipped += 1
                continue
            if len(self.labels) >= self.max_rows:
                raise UsageError(
                    f"{self.path}: has more than {self.max_rows:,} labelled rows; the model fit holds "
                    "the whole dataset in memory",
                    hint="raise --max-rows if the memory allows, or run on a sample of the rows",
                )
            self.labels.append(given)
            self.row_numbers.append(number)
            for column, i in where:
                self._value(column, values[i] if i is not None and i < len(values) else None, number)

    def _value(self, column: _Column, text: str | None, row: int) -> None:
        if column.state == "text":
            return
        value = _parse(text)
        if value is None:
            if column.state == "unknown" and self.named is None:
                column.state = "text"  # a text column: not a feature
                column.values = []
                return
            raise UsageError(
                f"{self.path}: feature column {column.name!r} holds a value that is not a number "
                f"at row {row}",
                hint="leave the column out with --exclude, or name the features with --feature",
            )
        if math.isnan(value):
            column.missing += 1
        elif column.state == "unknown":
            column.state = "numeric"
            column.first_row = row
        column.values.append(value)


def _class_order(texts: set[str]) -> list[str]:
    """The label texts sorted numerically when all are numbers, else as text."""
    try:
        return sorted(texts, key=lambda t: (float(t), t))
    except ValueError:
        return sorted(texts)


def label_scan(
    path: Path,
    *,
    label: str,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    method: str = "prune_by_margin",
    max_rows: int = DEFAULT_MAX_ROWS,
    kind: str | None = None,
    folds: int = 5,
    seed: int = 0,
) -> LabelScanResult:
    """Find the rows of the dataset at ``path`` whose ``label`` is probably wrong (see the module docs).

    Raises :class:`UsageError` for a missing column, a non-numeric feature value, too many rows or
    bad arguments, and :class:`InputError` when the file cannot be read or holds no labelled rows.
    """
    import numpy as np

    from garrison.data.labels import find_label_issues, out_of_sample_probabilities
    from garrison.data.readers import iter_batches

    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    if max_rows < 1:
        raise UsageError("max_rows must be at least 1")
    path = Path(path)
    loader = _Loader(path, label, features, set(exclude), max_rows)
    for batch in iter_batches(path, kind=kind):
        if batch.columns is None:
            raise UsageError(f"{path}: plain text has no columns; use CSV, TSV, JSON Lines or Parquet")
        loader.problems += len(batch.problems)
        if batch.problems and loader.first_problem is None:
            loader.first_problem = batch.problems[0].message
        loader.add(batch.columns, batch.rows)
    if not loader.seen:
        raise InputError(f"{path}: holds no rows to examine")
    missing = [c for c in (label, *(features or ()), *exclude) if c not in loader.seen]
    if missing:
        raise UsageError(f"{path}: no column named {', '.join(map(repr, dict.fromkeys(missing)))}")
    if not loader.labels:
        raise InputError(f"{path}: no row has a value in the label column {label!r}")

    rows = len(loader.labels)
    notes: list[str] = []
    if loader.skipped:
        notes.append(f"{loader.skipped:,} rows without a label left out")
    if loader.problems:
        notes.append(f"{loader.problems:,} read problems, the first: {loader.first_problem}")
    names, matrix = _feature_matrix(loader, path, notes)

    classes = _class_order(set(loader.labels))
    if len(classes) < 2:
        raise UsageError(f"{path}: the label column {label!r} has only one value, {classes[0]!r}")
    code = {text: i for i, text in enumerate(classes)}
    y = np.array([code[t] for t in loader.labels], dtype=np.int64)
    probs = out_of_sample_probabilities(matrix, y, folds=folds, seed=seed, class_count=len(classes))
    found = find_label_issues(y, probs, method=cast(Method, method))
    issues = tuple(
        LabelRowIssue(
            row=loader.row_numbers[issue.index],
            given=classes[issue.given_label],
            suggested=classes[issue.suggested_label],
            given_probability=issue.given_probability,
            suggested_probability=issue.suggested_probability,
            score=issue.score,
            reason=_reason(
                classes[issue.given_label],
                classes[issue.suggested_label],
                issue.given_probability,
                issue.suggested_probability,
            ),
        )
        for issue in found.issues
    )
    return LabelScanResult(
        path=path,
        label=label,
        features=names,
        classes=tuple(classes),
        rows=rows,
        skipped_rows=loader.skipped,
        method=method,
        estimated_issue_count=found.estimated_issue_count,
        issues=issues,
        notes=tuple(notes),
    )


def _feature_matrix(loader: _Loader, path: Path, notes: list[str]) -> tuple[tuple[str, ...], Any]:
    """The numeric feature columns and their ``(rows, features)`` matrix, empty values imputed."""
    import numpy as np

    rows = len(loader.labels)
    used: list[_Column] = []
    for column in loader.columns.values():
        column.values += [_MISSING] * (rows - len(column.values))  # absent from later batches
        column.missing = sum(1 for v in column.values if math.isnan(v))
        if column.state == "text":
            notes.append(f"column {column.name!r} is not numeric: left out of the features")
        elif column.state == "unknown":
            notes.append(f"column {column.name!r} has no values: left out of the features")
        else:
            used.append(column)
    if not used:
        raise UsageError(
            f"{path}: no numeric feature column besides the label {loader.label!r}",
            hint="name the features with --feature",
        )
    matrix = np.array([c.values for c in used], dtype=np.float64).T
    for j, column in enumerate(used):
        if column.missing:
            mean = float(np.nanmean(matrix[:, j]))
            matrix[np.isnan(matrix[:, j]), j] = mean
            notes.append(
                f"column {column.name!r}: {column.missing:,} empty values imputed with the mean {mean:.4g}"
            )
    return tuple(c.name for c in used), matrix


def _reason(given: str, suggested: str, p_given: float, p_suggested: float) -> str:
    return (
        f"labelled {_short(given)!r} (p={p_given:.2f}) but the model, fitted without this row, "
        f"says {_short(suggested)!r} (p={p_suggested:.2f})"
    )


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
