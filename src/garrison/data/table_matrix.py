"""A labelled dataset file read into a numeric feature matrix and class indices, for the model-based checks.

:func:`load_labelled_matrix` reads the file once (:func:`garrison.data.readers.iter_batches`) and holds
it in memory, so the number of rows is bounded (``max_rows``) and a larger file is refused rather than
sampled silently. The label scan (confident learning) and the backdoor scan both start here.

- Features: the named columns (``features``), or else every column other than the label whose first
  non-empty value is a number; ``exclude`` removes columns from either. A feature value that is not a
  number is a :class:`UsageError` naming the column and the row. Empty values (and ``nan``) are
  imputed with the column mean, with a note.
- Labels: the label column's text values, mapped to ``0 .. K-1`` in sorted order (numerically when
  every label is a number). Rows without a label are left out, with a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InputError, UsageError

__all__ = ["LabelledMatrix", "load_labelled_matrix"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledMatrix:
    """A dataset file's numeric features and labels, row by row."""

    features: tuple[str, ...]
    """The feature columns, in file order."""
    matrix: Any
    """``(rows, features)`` float64 array, empty values imputed."""
    classes: tuple[str, ...]
    """The label texts; the position of each is its class index."""
    y: Any
    """Class index of each row (int64 array)."""
    row_numbers: tuple[int, ...]
    """The reader's row number of each row (CSV: the first row under the header is 1)."""
    skipped: int
    """Rows left out because they had no label."""
    notes: tuple[str, ...]
    """What was done to the data on the way (imputation, columns left out, read problems)."""


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


def load_labelled_matrix(
    path: Path,
    *,
    label: str,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    max_rows: int,
    kind: str | None = None,
) -> LabelledMatrix:
    """Read ``path`` into features and class indices (see the module docs).

    Raises :class:`UsageError` for a missing column, a non-numeric feature value, too many rows or a
    single class, and :class:`InputError` when the file holds no labelled rows.
    """
    import numpy as np

    from garrison.data.readers import iter_batches

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
    return LabelledMatrix(
        features=names,
        matrix=matrix,
        classes=tuple(classes),
        y=np.array([code[t] for t in loader.labels], dtype=np.int64),
        row_numbers=tuple(loader.row_numbers),
        skipped=loader.skipped,
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
