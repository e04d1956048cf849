"""What a bias measurement holds: the policy thresholds, per-group counts, per-column metrics.

:mod:`garrison.data.bias` fills these in; :mod:`garrison.data.bias_rules` turns them into findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import ConfigError

if TYPE_CHECKING:
    from garrison.core.config import Settings

__all__ = [
    "DEFAULT_POSITIVE",
    "MISSING",
    "BiasReport",
    "BiasThresholds",
    "ColumnBias",
    "GroupStats",
    "exact",
]

DEFAULT_POSITIVE: tuple[str, ...] = ("1", "true", "yes")
"""Values read as the positive outcome, compared case-insensitively after trimming spaces."""

MISSING = "(missing)"
"""How a null protected value is shown; nulls form a group of their own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BiasThresholds:
    """The policy: how much disparity is tolerated before a finding is raised."""

    max_dp_difference: float = 0.1
    """Demographic parity difference above this is flagged."""
    min_dp_ratio: float = 0.8
    """Demographic parity ratio below this is flagged (the four-fifths rule)."""
    max_eo_difference: float = 0.1
    """Equalized odds difference above this is flagged."""

    def __post_init__(self) -> None:
        for name in ("max_dp_difference", "min_dp_ratio", "max_eo_difference"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"bias threshold {name} must be a number from 0 to 1, not {value!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BiasThresholds:
        """Thresholds from a table such as ``[bias]`` in ``garrison.toml``; unknown keys are errors."""
        known = {"max_dp_difference", "min_dp_ratio", "max_eo_difference"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown bias threshold(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: data[k] for k in known if k in data})

    @classmethod
    def from_settings(cls, settings: Settings) -> BiasThresholds:
        """The thresholds of the settings (``bias-*`` keys, the ``[bias]`` table of ``garrison.toml``)."""
        return cls(
            max_dp_difference=settings.bias_max_dp_difference,
            min_dp_ratio=settings.bias_min_dp_ratio,
            max_eo_difference=settings.bias_max_eo_difference,
        )

    def to_dict(self) -> dict[str, float]:
        """JSON-compatible form."""
        return {
            "max_dp_difference": self.max_dp_difference,
            "min_dp_ratio": self.min_dp_ratio,
            "max_eo_difference": self.max_eo_difference,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStats:
    """Counts for the rows holding one value of a protected column."""

    value: str | None
    """The protected value; ``None`` for rows where it is null."""
    rows: int
    """Rows of the group with every outcome column present."""
    label_positives: int = 0
    """Rows whose label is positive (0 without a label)."""
    predicted_positives: int = 0
    """Rows whose prediction is positive (0 without a prediction)."""
    tp: int = 0
    """Label positive, prediction positive."""
    fp: int = 0
    """Label negative, prediction positive."""
    tn: int = 0
    """Label negative, prediction negative."""
    fn: int = 0
    """Label positive, prediction negative."""
    included: bool = True
    """Whether the group counts towards the metrics (large enough)."""

    @property
    def name(self) -> str:
        """The value as shown to people."""
        return MISSING if self.value is None else self.value

    def selection(self, on_prediction: bool) -> Fraction | None:
        """Share of rows selected (predicted positive, or labelled positive without predictions)."""
        hits = self.predicted_positives if on_prediction else self.label_positives
        return Fraction(hits, self.rows) if self.rows else None

    @property
    def tpr(self) -> Fraction | None:
        """True positive rate; ``None`` when the group has no positive label."""
        return Fraction(self.tp, self.tp + self.fn) if self.tp + self.fn else None

    @property
    def fpr(self) -> Fraction | None:
        """False positive rate; ``None`` when the group has no negative label."""
        return Fraction(self.fp, self.fp + self.tn) if self.fp + self.tn else None

    def to_dict(self, on_prediction: bool, confusion: bool) -> dict[str, Any]:
        """JSON-compatible form with the rates."""
        out: dict[str, Any] = {"value": self.value, "rows": self.rows, "included": self.included}
        out["selection_rate"] = _float(self.selection(on_prediction))
        if confusion:
            out |= {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}
            out |= {"tpr": _float(self.tpr), "fpr": _float(self.fpr)}
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnBias:
    """The groups of one protected column and the disparity between them."""

    column: str
    """The protected column."""
    groups: tuple[GroupStats, ...]
    """Every group, largest first (empty when the column is unsuitable)."""
    unsuitable: str | None = None
    """Why no metric could be computed for the column at all (too many distinct values)."""
    notes: tuple[str, ...] = ()
    """Groups left out of the metrics and why, and metrics that could not be computed."""
    dp_difference: Fraction | None = None
    """Demographic parity difference (max − min selection rate), or ``None``."""
    dp_ratio: Fraction | None = None
    """Demographic parity ratio (min / max selection rate), or ``None``."""
    tpr_difference: Fraction | None = None
    """Max − min true positive rate, or ``None`` without label and prediction."""
    fpr_difference: Fraction | None = None
    """Max − min false positive rate, or ``None`` without label and prediction."""
    eo_difference: Fraction | None = None
    """Equalized odds difference: the larger of the TPR and FPR differences, or ``None``."""
    eo_ratio: Fraction | None = None
    """Equalized odds ratio: the smaller of the TPR and FPR ratios, or ``None``."""

    def dp_flagged(self, thresholds: BiasThresholds) -> bool:
        """Whether demographic parity is outside the policy (strictly above / below a threshold)."""
        over = self.dp_difference is not None and self.dp_difference > exact(thresholds.max_dp_difference)
        under = self.dp_ratio is not None and self.dp_ratio < exact(thresholds.min_dp_ratio)
        return over or under

    def eo_flagged(self, thresholds: BiasThresholds) -> bool:
        """Whether equalized odds is outside the policy (strictly above the threshold)."""
        return self.eo_difference is not None and self.eo_difference > exact(thresholds.max_eo_difference)


@dataclass(frozen=True, slots=True, kw_only=True)
class BiasReport:
    """What :func:`bias_report` measured."""

    path: Path
    """The dataset."""
    label: str | None
    """The label column, if any."""
    prediction: str | None
    """The prediction column, if any."""
    positive: tuple[str, ...]
    """The values read as positive (normalised)."""
    thresholds: BiasThresholds
    """The policy the metrics are compared with."""
    min_group_rows: int
    """Groups smaller than this are left out of the metrics."""
    rows: int
    """Rows read."""
    skipped_rows: int
    """Rows left out because the label or prediction was null."""
    columns: tuple[ColumnBias, ...] = field(default=())
    """One entry per protected column, in the order asked for."""

    @property
    def on_prediction(self) -> bool:
        """Whether selection rates are of the prediction (else of the label)."""
        return self.prediction is not None

    @property
    def confusion(self) -> bool:
        """Whether there are true/false positive rates (label and prediction both given)."""
        return self.label is not None and self.prediction is not None

    @property
    def flagged(self) -> bool:
        """Whether any column is outside the policy."""
        t = self.thresholds
        return any(c.dp_flagged(t) or c.eo_flagged(t) for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form: settings, and per column its groups, metrics and verdicts."""
        t = self.thresholds
        return {
            "path": str(self.path),
            "label": self.label,
            "prediction": self.prediction,
            "selection_on": "prediction" if self.on_prediction else "label",
            "positive": list(self.positive),
            "thresholds": t.to_dict(),
            "min_group_rows": self.min_group_rows,
            "rows": self.rows,
            "skipped_rows": self.skipped_rows,
            "flagged": self.flagged,
            "columns": [
                {
                    "column": c.column,
                    "unsuitable": c.unsuitable,
                    "notes": list(c.notes),
                    "groups": [g.to_dict(self.on_prediction, self.confusion) for g in c.groups],
                    "demographic_parity_difference": _float(c.dp_difference),
                    "demographic_parity_ratio": _float(c.dp_ratio),
                    "equalized_odds_difference": _float(c.eo_difference),
                    "equalized_odds_ratio": _float(c.eo_ratio),
                    "demographic_parity_flagged": c.dp_flagged(t),
                    "equalized_odds_flagged": c.eo_flagged(t),
                }
                for c in self.columns
            ],
        }


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def exact(threshold: float) -> Fraction:
    """A threshold as the decimal the user wrote (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(float(threshold)))
