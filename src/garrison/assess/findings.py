"""The findings an evasion assessment raises, judged against the policy's thresholds.

:func:`evasion_findings` reads an :class:`~garrison.assess.results.EvasionReport` and returns:

- GAR-ADV-001 (:data:`~garrison.assess.rules.LOW_ROBUST_ACCURACY`), one per epsilon at or below the
  policy's epsilon where the lowest robust accuracy of any attack is below the policy's minimum. An
  L2 ball of radius ε lies inside the L∞ ball of the same radius, and a smaller ball inside a larger
  one, so a result at a smaller ε or in L2 that falls below the minimum means the policy's ε breaks
  the model too. Results at larger epsilons are reported, not judged.
- GAR-ADV-002 (:data:`~garrison.assess.rules.SMALL_ADVERSARIAL_PERTURBATION`), one per
  minimal-perturbation attack (CW-L2, HopSkipJump) that broke at least :data:`MIN_BROKEN_SHARE` of the
  correctly classified samples with a median L2 below the policy's minimum.

Evidence is a :class:`~garrison.core.evidence.Metric` with the value and the threshold; its name
carries the epsilon or the attack (``robust_accuracy@eps=0.1``, ``median_l2[cw-l2]``) so each finding
keeps its fingerprint from one run to the next while the values move.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison.assess.results import AttackResult, EvasionReport
from garrison.assess.rules import LOW_ROBUST_ACCURACY, SMALL_ADVERSARIAL_PERTURBATION
from garrison.core.assets import Asset
from garrison.core.errors import ConfigError
from garrison.core.evidence import Metric
from garrison.core.findings import Finding

if TYPE_CHECKING:
    from garrison.core.config import Settings

__all__ = ["DETECTOR", "MIN_BROKEN_SHARE", "EvasionThresholds", "evasion_findings", "judged_epsilons"]

DETECTOR = "assess.evasion"
"""The detector name findings of an evasion assessment carry."""

MIN_BROKEN_SHARE = 0.5
"""GAR-ADV-002 applies only when the attack broke at least this share of the clean-correct samples."""

_EPS_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class EvasionThresholds:
    """The policy: how robust a model must be before an evasion assessment raises a finding."""

    epsilon: float = 0.1
    """Perturbation budget (input units) at which robust accuracy is judged; smaller ones are too."""
    min_robust_accuracy: float = 0.3
    """Robust accuracy (0..1) below this at ``epsilon`` or less is a GAR-ADV-001 finding."""
    min_median_l2: float = 1.0
    """Median L2 perturbation of a minimal-perturbation attack below this is a GAR-ADV-002 finding."""

    def __post_init__(self) -> None:
        for name in ("epsilon", "min_robust_accuracy", "min_median_l2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"assess threshold {name} must be a finite number, not {value!r}")
        if self.epsilon <= 0:
            raise ConfigError(f"assess threshold epsilon must be positive, not {self.epsilon!r}")
        if not 0.0 <= self.min_robust_accuracy <= 1.0:
            raise ConfigError(
                f"assess threshold min_robust_accuracy must be from 0 to 1, not {self.min_robust_accuracy!r}"
            )
        if self.min_median_l2 < 0:
            raise ConfigError(
                f"assess threshold min_median_l2 must not be negative, not {self.min_median_l2!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> EvasionThresholds:
        """The thresholds of the settings (``assess-*`` keys, the ``[assess]`` table of ``garrison.toml``)."""
        return cls(
            epsilon=settings.assess_epsilon,
            min_robust_accuracy=settings.assess_min_robust_accuracy,
            min_median_l2=settings.assess_min_median_l2,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {
            "epsilon": self.epsilon,
            "min_robust_accuracy": self.min_robust_accuracy,
            "min_median_l2": self.min_median_l2,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EvasionThresholds:
        """Thresholds from a mapping with the field names; unknown keys are errors."""
        known = {"epsilon", "min_robust_accuracy", "min_median_l2"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown assess threshold(s): {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        return cls(**{k: data[k] for k in known if k in data})


def judged_epsilons(report: EvasionReport, thresholds: EvasionThresholds) -> tuple[float, ...]:
    """The distinct epsilons of ``report`` that GAR-ADV-001 judges (at or below the policy's), ascending."""
    limit = thresholds.epsilon * (1 + _EPS_TOLERANCE)
    found: list[float] = []
    for r in report.results:
        if (
            r.epsilon is not None
            and r.epsilon <= limit
            and not any(math.isclose(r.epsilon, e) for e in found)
        ):
            found.append(float(r.epsilon))
    return tuple(sorted(found))


def evasion_findings(
    report: EvasionReport, asset: Asset, thresholds: EvasionThresholds | None = None
) -> list[Finding]:
    """GAR-ADV-001 per judged epsilon below the minimum, then GAR-ADV-002 per minimal attack below it."""
    policy = thresholds or EvasionThresholds()
    return [*_robust_accuracy_findings(report, asset, policy), *_perturbation_findings(report, asset, policy)]


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _attack_text(r: AttackResult) -> str:
    norm = "L∞" if r.norm == "linf" else "L2"
    return f"{r.attack} ({norm})"


def _robust_accuracy_findings(
    report: EvasionReport, asset: Asset, policy: EvasionThresholds
) -> list[Finding]:
    found = []
    for eps in judged_epsilons(report, policy):
        at_eps = [r for r in report.results if r.epsilon is not None and math.isclose(r.epsilon, eps)]
        worst = min(at_eps, key=lambda r: (r.robust_accuracy, r.attack))
        if worst.robust_accuracy >= policy.min_robust_accuracy:
            continue
        others = [r for r in sorted(at_eps, key=lambda r: r.robust_accuracy) if r is not worst]
        also = "; ".join(f"{_attack_text(r)} {_pct(r.robust_accuracy)}" for r in others)
        clean_note = (
            " (clean accuracy is itself below the minimum)"
            if worst.clean_accuracy < policy.min_robust_accuracy
            else ""
        )
        message = (
            f"robust accuracy {_pct(worst.robust_accuracy)} at ε={eps:g} under {_attack_text(worst)}, below "
            f"the policy's {_pct(policy.min_robust_accuracy)} at ε≤{policy.epsilon:g}; clean accuracy "
            f"{_pct(worst.clean_accuracy)}{clean_note}; the attack broke {_pct(worst.success_rate)} of the "
            f"correctly classified samples ({worst.samples:,} samples)" + (f"; also {also}" if also else "")
        )
        found.append(
            Finding.create(
                rule=LOW_ROBUST_ACCURACY,
                asset=asset,
                message=message,
                detector=DETECTOR,
                evidence=(
                    Metric(
                        name=f"robust_accuracy@eps={eps:g}",
                        value=round(worst.robust_accuracy, 6),
                        threshold=policy.min_robust_accuracy,
                        comparison="<",
                    ),
                    Metric(name="clean_accuracy", value=round(worst.clean_accuracy, 6)),
                ),
            )
        )
    return found


def _perturbation_findings(report: EvasionReport, asset: Asset, policy: EvasionThresholds) -> list[Finding]:
    found = []
    for r in report.results:
        if r.epsilon is not None or r.norm != "l2" or r.median_perturbation is None:
            continue
        if r.success_rate < MIN_BROKEN_SHARE or r.median_perturbation >= policy.min_median_l2:
            continue
        message = (
            f"{r.attack} broke {_pct(r.success_rate)} of the correctly classified samples with a median "
            f"L2 perturbation of {r.median_perturbation:.3g}, below the policy's {policy.min_median_l2:g} "
            f"({r.samples:,} samples, clean accuracy {_pct(r.clean_accuracy)}, "
            f"{r.queries_per_sample:,.0f} model evaluations per sample)"
        )
        found.append(
            Finding.create(
                rule=SMALL_ADVERSARIAL_PERTURBATION,
                asset=asset,
                message=message,
                detector=DETECTOR,
                evidence=(
                    Metric(
                        name=f"median_l2[{r.attack}]",
                        value=round(r.median_perturbation, 6),
                        threshold=policy.min_median_l2,
                        comparison="<",
                    ),
                    Metric(
                        name=f"success_rate[{r.attack}]",
                        value=round(r.success_rate, 6),
                        threshold=MIN_BROKEN_SHARE,
                        comparison=">=",
                    ),
                ),
            )
        )
    return found
