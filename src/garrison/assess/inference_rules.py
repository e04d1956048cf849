"""Rules for attribute inference (GAR-AIN-*) and model inversion (GAR-INV-*), and their findings.

Attribute inference (OWASP ML03, Model Inversion Attack; MITRE ATLAS AML.T0024.001, Invert ML Model)
guesses a sensitive column of a record (a diagnosis, an income band) from the model's answers and the
record's other columns. What counts is the *advantage* over a baseline that sees the other columns
only: a model that adds nothing to what the other columns tell leaks nothing. Two findings:

- GAR-AIN-001 (:data:`ATTRIBUTE_INFERABLE`): an attack that queries the model guesses the column
  better than the baseline by more than ``max_advantage``, on members or on non-members. The model
  is a better oracle for the column than the data itself.
- GAR-AIN-002 (:data:`ATTRIBUTE_MEMORISED`): the advantage on the model's training records exceeds
  its advantage on other records by more than ``max_member_gap``: the model memorised the column of
  the records it was trained on.

Model inversion reconstructs a representative input of each class from the model's gradients
(MI-Face). GAR-INV-001 (:data:`CLASS_RECONSTRUCTABLE`) is raised when the reconstructions are
recognisably their class: at least ``min_identified`` of them are nearest to their own class's mean
in the reference data, at least twice chance. For digits or objects that is expected of any good
classifier; where a class is a person (faces, voices), it is the attack the rule exists for.

Like the other rule modules, this one imports only :mod:`garrison.core` at run time, so registering
its rules pulls in no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from garrison.core.errors import ConfigError
from garrison.core.evidence import Metric
from garrison.core.findings import Finding
from garrison.core.rules import Rule
from garrison.core.severity import Severity

if TYPE_CHECKING:
    from garrison.assess.inversion import InversionReport
    from garrison.assess.privacy_attribute import AttributeInferenceReport
    from garrison.core.assets import Asset
    from garrison.core.config import Settings

__all__ = [
    "AIN_RULES",
    "ATTRIBUTE_DETECTOR",
    "ATTRIBUTE_INFERABLE",
    "ATTRIBUTE_MEMORISED",
    "CLASS_RECONSTRUCTABLE",
    "INVERSION_DETECTOR",
    "INV_RULES",
    "AttributeThresholds",
    "InversionThresholds",
    "attribute_findings",
    "inversion_findings",
]

ATTRIBUTE_DETECTOR = "assess.attribute"
"""The detector name findings of an attribute-inference assessment carry."""
INVERSION_DETECTOR = "assess.inversion"
"""The detector name findings of a model-inversion assessment carry."""

_PRIVACY = ("NIST-AI-RMF:MEASURE-2.10", "ISO-42001:A.7.4", "EU-AI-Act:Art-10")

ATTRIBUTE_INFERABLE = Rule(
    id="GAR-AIN-001",
    name="sensitive-attribute-inferable",
    title="The model's answers reveal a sensitive column beyond what the other columns tell",
    severity=Severity.MEDIUM,
    description=(
        "An attribute-inference attack that queries the model (trying each value of the sensitive "
        "column and keeping the one the model finds most likely, matching the model's output, or a "
        "classifier of the outputs) guesses the column better than a baseline that sees only the "
        "record's other columns, by more than the policy's advantage (assess-max-attribute-advantage, "
        "default 0.10). Anyone who "
        "knows the other columns of a person's record and can query the model learns the sensitive "
        "one more reliably than from the data alone. The evidence gives the advantage on the model's "
        "training records and on others, and the baseline's own accuracy."
    ),
    remediation=(
        "Expose less: serve labels or rounded top-k scores (the gateway's output controls) and "
        "measure again; drop or coarsen the sensitive column if the model does not need it; "
        "regularise, or train with differential privacy, when the advantage is larger on training "
        "records (GAR-AIN-002)."
    ),
    owasp_ml=("ML03",),
    atlas=("AML.T0024.001", "AML.T0024"),
    controls=_PRIVACY,
    example=(
        "forest.joblib, column 3 (smoker, 2 values): output-match guesses it with 91.2% accuracy on "
        "members, +0.43 over the baseline (other columns only, 48.3%)"
    ),
    tags=("model", "privacy", "attribute-inference"),
)

ATTRIBUTE_MEMORISED = Rule(
    id="GAR-AIN-002",
    name="training-attribute-memorised",
    title="The model memorised a sensitive column of its training records",
    severity=Severity.HIGH,
    description=(
        "An attribute-inference attack beats the baseline on the model's training records, and gains "
        "more there than on records it never saw, by more than the policy's gap "
        "(assess-max-attribute-member-gap, default 0.05): the model is a better oracle for the "
        "column of the people it was trained on. That is disclosure about those people "
        "specifically, the case privacy law cares about, and comes from overfitting."
    ),
    remediation=(
        "Reduce memorisation and measure again: regularise (weight decay, early stopping, fewer or "
        "shallower trees), train on more data, or train with differential privacy (DP-SGD with "
        "Opacus) for a provable bound; serve labels only where the use allows."
    ),
    owasp_ml=("ML03", "ML04"),
    atlas=("AML.T0024.001", "AML.T0024.000"),
    controls=_PRIVACY,
    example="forest.joblib, column 3: confidence +0.21 over the baseline on members, +0.04 on non-members",
    tags=("model", "privacy", "attribute-inference", "memorisation"),
)

CLASS_RECONSTRUCTABLE = Rule(
    id="GAR-INV-001",
    name="class-representative-reconstructable",
    title="A recognisable representative of each class can be reconstructed from the model",
    severity=Severity.MEDIUM,
    description=(
        "Model inversion (MI-Face: gradient ascent on the input to maximise a class's probability, "
        "with a smoothness prior) produced inputs that are recognisably their class: the share whose "
        "nearest class mean in the reference data is their own class is at least the policy's "
        "minimum (assess-min-inversion-identified, default 0.5) and at least twice chance. For "
        "classes that are people (faces, voices, signatures) this reconstructs what a person looks "
        "like from the model alone; for digits or objects it is expected of any good classifier "
        "and the finding is informational in substance. The attack needs gradients, or scores and "
        "many queries."
    ),
    remediation=(
        "Do not publish the model's weights or serve raw scores where classes are people: serve "
        "labels only or rounded scores (the gateway's output controls), rate-limit queries, and "
        "consider training with differential privacy, which blurs reconstructions. Raise or lower "
        "assess-min-inversion-identified to match how sensitive the classes are."
    ),
    owasp_ml=("ML03",),
    atlas=("AML.T0024.001", "AML.T0024"),
    controls=_PRIVACY,
    example="faces.pt: 38 of 40 class reconstructions are nearest their own class (chance 2.5%)",
    tags=("model", "privacy", "model-inversion"),
)

AIN_RULES: tuple[Rule, ...] = (ATTRIBUTE_INFERABLE, ATTRIBUTE_MEMORISED)
"""Every rule of the attribute-inference assessment."""
INV_RULES: tuple[Rule, ...] = (CLASS_RECONSTRUCTABLE,)
"""Every rule of the model-inversion assessment."""


def _share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"assess threshold {name} must be a finite number, not {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"assess threshold {name} must be from 0 to 1, not {value!r}")


def _from_mapping(cls: Any, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown assess threshold(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
        )
    return cls(**{k: data[k] for k in known if k in data})


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeThresholds:
    """The policy for attribute inference."""

    max_advantage: float = 0.1
    """An attack's accuracy above the best baseline's by more than this is a GAR-AIN-001 finding."""
    max_member_gap: float = 0.05
    """Member advantage above non-member advantage by more than this is a GAR-AIN-002 finding."""

    def __post_init__(self) -> None:
        _share("max_advantage", self.max_advantage)
        _share("max_member_gap", self.max_member_gap)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {"max_advantage": self.max_advantage, "max_member_gap": self.max_member_gap}

    @classmethod
    def from_settings(cls, settings: Settings) -> AttributeThresholds:
        """The thresholds of the settings (``assess-max-attribute-*``, the ``[assess]`` table)."""
        return cls(
            max_advantage=settings.assess_max_attribute_advantage,
            max_member_gap=settings.assess_max_attribute_member_gap,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AttributeThresholds:
        """Thresholds from a mapping with the field names; unknown keys are errors."""
        found: AttributeThresholds = _from_mapping(cls, data)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class InversionThresholds:
    """The policy for model inversion."""

    min_identified: float = 0.5
    """A share of identifiable reconstructions at or above this (and twice chance) is GAR-INV-001."""

    def __post_init__(self) -> None:
        _share("min_identified", self.min_identified)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {"min_identified": self.min_identified}

    @classmethod
    def from_settings(cls, settings: Settings) -> InversionThresholds:
        """The threshold of the settings (``assess-min-inversion-identified``, ``[assess]`` table)."""
        return cls(min_identified=settings.assess_min_inversion_identified)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> InversionThresholds:
        """Thresholds from a mapping with the field names; unknown keys are errors."""
        found: InversionThresholds = _from_mapping(cls, data)
        return found


def _column(report: AttributeInferenceReport) -> str:
    return f"column {report.sensitive_column} ({report.kind}, {len(report.values)} values)"


def attribute_findings(
    report: AttributeInferenceReport, asset: Asset, thresholds: AttributeThresholds | None = None
) -> list[Finding]:
    """GAR-AIN-001 for the model attack with the largest advantage above the policy; GAR-AIN-002 for
    the one whose member advantage most exceeds its non-member advantage beyond the policy's gap (it
    must beat the baseline on members: a smaller loss there is no disclosure)."""
    policy = thresholds or AttributeThresholds()
    attacks = [r for r in report.results if r.uses_model]
    baseline = max(
        (r.member_accuracy for r in report.results if not r.uses_model), default=report.majority_accuracy
    )
    found: list[Finding] = []
    inferable = [r for r in attacks if max(r.member_advantage, r.non_member_advantage) > policy.max_advantage]
    if inferable:
        worst = max(inferable, key=lambda r: max(r.member_advantage, r.non_member_advantage))
        found.append(
            Finding.create(
                rule=ATTRIBUTE_INFERABLE,
                asset=asset,
                detector=ATTRIBUTE_DETECTOR,
                message=(
                    f"{worst.attack} guesses {_column(report)} with {worst.member_accuracy:.1%} accuracy "
                    f"on members and {worst.non_member_accuracy:.1%} on non-members, "
                    f"{worst.member_advantage:+.2f} / {worst.non_member_advantage:+.2f} over the best "
                    f"baseline ({baseline:.1%} on members, other columns only); the policy allows "
                    f"{policy.max_advantage:+.2f}"
                ),
                evidence=(
                    Metric(
                        name=f"attribute_advantage[{worst.attack}]",
                        value=round(max(worst.member_advantage, worst.non_member_advantage), 6),
                        threshold=policy.max_advantage,
                        comparison=">",
                    ),
                    Metric(name=f"member_accuracy[{worst.attack}]", value=round(worst.member_accuracy, 6)),
                    Metric(name="baseline_member_accuracy", value=round(baseline, 6)),
                ),
            )
        )
    gaps = [
        r
        for r in attacks
        if r.member_advantage > 0.0  # beats the baseline on members: a gain, not a smaller loss
        and r.member_advantage - r.non_member_advantage > policy.max_member_gap
    ]
    if gaps:
        worst = max(gaps, key=lambda r: r.member_advantage - r.non_member_advantage)
        gap = worst.member_advantage - worst.non_member_advantage
        found.append(
            Finding.create(
                rule=ATTRIBUTE_MEMORISED,
                asset=asset,
                detector=ATTRIBUTE_DETECTOR,
                message=(
                    f"{worst.attack} gains {worst.member_advantage:+.2f} over the baseline on "
                    f"{_column(report)} of the model's {report.members:,} training records and "
                    f"{worst.non_member_advantage:+.2f} on {report.non_members:,} others: a gap of "
                    f"{gap:.2f}, above the policy's {policy.max_member_gap:.2f}"
                ),
                evidence=(
                    Metric(
                        name=f"member_advantage_gap[{worst.attack}]",
                        value=round(gap, 6),
                        threshold=policy.max_member_gap,
                        comparison=">",
                    ),
                ),
            )
        )
    return found


def inversion_findings(
    report: InversionReport, asset: Asset, thresholds: InversionThresholds | None = None
) -> list[Finding]:
    """GAR-INV-001 when enough reconstructions are identifiable as their class; nothing otherwise."""
    policy = thresholds or InversionThresholds()
    rate = report.identification_rate
    if rate is None or rate < policy.min_identified or rate < 2 * report.chance_rate:
        return []
    margin = "" if report.mean_margin is None else f", mean margin {report.mean_margin:.2f}"
    return [
        Finding.create(
            rule=CLASS_RECONSTRUCTABLE,
            asset=asset,
            detector=INVERSION_DETECTOR,
            message=(
                f"{report.identified} of {len(report.reconstructions)} class reconstructions are nearest "
                f"their own class's mean ({rate:.0%}; chance {report.chance_rate:.0%}), model confidence "
                f"{report.mean_confidence:.1%} on them{margin}; the policy flags {policy.min_identified:.0%}"
            ),
            evidence=(
                Metric(
                    name="identified_reconstructions",
                    value=round(rate, 6),
                    threshold=policy.min_identified,
                    comparison=">=",
                ),
                Metric(name="chance", value=round(report.chance_rate, 6)),
            ),
        )
    ]
