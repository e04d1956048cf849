"""Label issues in a dataset file: load it, fit out-of-sample, and find the rows probably mislabelled.

:func:`label_scan` reads the dataset once (:func:`garrison.data.readers.iter_batches`) into a numeric
feature matrix and a label vector, then runs confident learning
(:func:`garrison.data.labels.out_of_sample_probabilities` and
:func:`garrison.data.labels.find_label_issues`). Unlike the streaming checks, the model fit holds the
whole dataset in memory, so the number of rows is bounded (``max_rows``) and a larger file is refused
rather than sampled silently.

The loading (which columns are features, imputation, label order) is
:func:`garrison.data.table_matrix.load_labelled_matrix`'s. Issues carry the reader's row numbers (for
CSV the header is row 0) and the original label texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from garrison.core.errors import UsageError
from garrison.data.labels import METHODS, Method
from garrison.data.table_matrix import load_labelled_matrix

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DuplicateConflict",
    "LabelRowIssue",
    "LabelScanResult",
    "OutlierRow",
    "label_scan",
]

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
class DuplicateConflict:
    """Rows with identical or near-identical features and different labels."""

    rows: tuple[int, ...]
    """The rows' numbers (as the reader gave them)."""
    labels: tuple[str, ...]
    """Each row's label, as written in the file."""
    exact: bool
    """True when the features are identical."""
    distance: float
    """Largest distance between linked rows, in standardised features (0 when exact)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "rows": list(self.rows),
            "labels": list(self.labels),
            "exact": self.exact,
            "distance": round(self.distance, 6),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierRow:
    """A row far from every other row."""

    row: int
    """The row number."""
    label: str
    """Its label, as written in the file."""
    score: float
    """Mean distance to its nearest neighbours over the dataset's median of that distance."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"row": self.row, "label": self.label, "score": round(self.score, 6)}


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
    duplicates: tuple[DuplicateConflict, ...] = ()
    """Groups of duplicate or near-duplicate rows with conflicting labels, largest first."""
    outliers: tuple[OutlierRow, ...] = ()
    """Rows far from every other row, most outlying first."""
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
            "duplicate_conflicts": [group.to_dict() for group in self.duplicates],
            "outliers": [row.to_dict() for row in self.outliers],
            "notes": list(self.notes),
        }


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
    duplicates: bool = True,
    outliers: bool = True,
) -> LabelScanResult:
    """Find the rows of the dataset at ``path`` whose ``label`` is probably wrong (see the module docs).

    Raises :class:`UsageError` for a missing column, a non-numeric feature value, too many rows or
    bad arguments, and :class:`InputError` when the file cannot be read or holds no labelled rows.
    """
    from garrison.data import suspects
    from garrison.data.labels import find_label_issues, out_of_sample_probabilities

    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    if max_rows < 1:
        raise UsageError("max_rows must be at least 1")
    table = load_labelled_matrix(
        path, label=label, features=features, exclude=exclude, max_rows=max_rows, kind=kind
    )
    classes, y = table.classes, table.y
    probs = out_of_sample_probabilities(table.matrix, y, folds=folds, seed=seed, class_count=len(classes))
    found = find_label_issues(y, probs, method=cast(Method, method))
    issues = tuple(
        LabelRowIssue(
            row=table.row_numbers[issue.index],
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
    numbers = table.row_numbers
    conflicts = tuple(
        DuplicateConflict(
            rows=tuple(numbers[r] for r in group.rows),
            labels=tuple(classes[v] for v in group.labels),
            exact=group.exact,
            distance=group.distance,
        )
        for group in (suspects.conflicting_duplicates(table.matrix, y) if duplicates else [])
    )
    far = tuple(
        OutlierRow(row=numbers[o.row], label=classes[o.label], score=o.score)
        for o in (suspects.outliers(table.matrix, y) if outliers else [])
    )
    return LabelScanResult(
        path=Path(path),
        label=label,
        features=table.features,
        classes=classes,
        rows=len(y),
        skipped_rows=table.skipped,
        method=method,
        estimated_issue_count=found.estimated_issue_count,
        issues=issues,
        duplicates=conflicts,
        outliers=far,
        notes=table.notes,
    )


def _reason(given: str, suggested: str, p_given: float, p_suggested: float) -> str:
    return (
        f"labelled {_short(given)!r} (p={p_given:.2f}) but the model, fitted without this row, "
        f"says {_short(suggested)!r} (p={p_suggested:.2f})"
    )


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
