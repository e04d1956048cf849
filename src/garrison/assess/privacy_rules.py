"""Rules for membership inference (GAR-MIA-*) and the findings a membership assessment raises.

A membership-inference attack (OWASP ML04, Membership Inference Attack; MITRE ATLAS AML.T0024.000,
Infer Training Data Membership, under AML.T0024, Exfiltration via ML Inference API) tells from a
model's outputs whether a given record was in its training set: for a model trained on medical,
financial or other personal records, that alone discloses something about the person.
:func:`membership_findings` turns a :class:`~garrison.assess.privacy.MembershipReport` into findings
with the policy's threshold (:class:`MembershipThresholds`); evidence is a
:class:`~garrison.core.evidence.Metric` named ``membership_auc[ATTACK]`` so the fingerprint survives
runs whose values move.

The module imports only :mod:`garrison.core` at import time (the report type only for type checking),
so registering :data:`MIA_RULES` pulls in no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from garrison.core.errors import ConfigError
from garrison.core.evidence import Metric
from garrison.core.findings import Finding
from garrison.core.rules import Rule
from garrison.core.severity import Severity

if TYPE_CHECKING:
    from garrison.assess.privacy import MembershipReport
    from garrison.core.assets import Asset
    from garrison.core.config import Settings

__all__ = ["DETECTOR", "HIGH_MEMBERSHIP_AUC", "MIA_RULES", "MembershipThresholds", "membership_findings"]

DETECTOR = "assess.privacy"
"""The detector name findings of a membership assessment carry."""

_PRIVACY = ("NIST-AI-RMF:MEASURE-2.10", "ISO-42001:A.7.4", "EU-AI-Act:Art-10")

HIGH_MEMBERSHIP_AUC = Rule(
    id="GAR-MIA-001",
    name="training-membership-leak",
    title="The model reveals which records it was trained on: membership-inference AUC above the policy",
    severity=Severity.HIGH,
    description=(
        "A membership-inference attack run against the model (loss threshold, shadow models, or "
        "the likelihood-ratio attack LiRA, online or offline) tells the model's training records "
        "from records it never saw with an area under the ROC curve above the policy's maximum "
        "(assess-max-membership-auc, default 0.6; 0.5 is guessing). The attack needs only the "
        "model's output probabilities for a record and data from the same distribution to train "
        "shadow models, so anyone who can query the model can test whether a given person's record "
        "was in its training data. The TPR at 0.1% and 1% false positives in the evidence say how "
        "many records can be identified with confidence; a high TPR at a low FPR is the serious case "
        "even when the AUC is moderate. The cause is overfitting: the model is much more confident "
        "on its training records than on others."
    ),
    remediation=(
        "Reduce memorisation and measure again: regularise (weight decay, dropout, early stopping, "
        "fewer or shallower trees, min_samples_leaf), train on more data, or train with differential "
        "privacy (DP-SGD with Opacus) for a provable bound. Serve labels only or rounded top-k "
        "probabilities (the gateway's output controls), which weakens score-based attacks though not "
        "label-only ones. Do not publish the model's weights or raw scores where the training data is "
        "personal."
    ),
    owasp_ml=("ML04",),
    atlas=("AML.T0024.000", "AML.T0024"),
    controls=_PRIVACY,
    example=(
        "forest.joblib on members.npz: lira-online AUC 0.95 above 0.6, TPR 58% at 1% FPR "
        "(600 members, 600 non-members, 64 shadow models)"
    ),
    tags=("model", "privacy", "membership-inference"),
)

MIA_RULES: tuple[Rule, ...] = (HIGH_MEMBERSHIP_AUC,)
"""Every rule of the membership assessment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipThresholds:
    """The policy: how much membership leakage a model may show before a finding is raised."""

    max_auc: float = 0.6
    """A membership attack's AUC above this is a GAR-MIA-001 finding (0.5 is guessing)."""

    def __post_init__(self) -> None:
        value = self.max_auc
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"assess threshold max_auc must be a finite number, not {value!r}")
        if not 0.5 <= value <= 1.0:
            raise ConfigError(f"assess threshold max_auc must be from 0.5 to 1, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {"max_auc": self.max_auc}

    @classmethod
    def from_settings(cls, settings: Settings) -> MembershipThresholds:
        """The threshold of the settings (``assess-max-membership-auc``, ``[assess]`` table)."""
        return cls(max_auc=settings.assess_max_membership_auc)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> MembershipThresholds:
        """Thresholds from a mapping with the field names; unknown keys are errors."""
        unknown = sorted(set(data) - {"max_auc"})
        if unknown:
            raise ConfigError(f"unknown assess threshold(s): {', '.join(unknown)}", hint="known: max_auc")
        return cls(**{k: data[k] for k in ("max_auc",) if k in data})


def membership_findings(
    report: MembershipReport, asset: Asset, thresholds: MembershipThresholds | None = None
) -> list[Finding]:
    """One GAR-MIA-001 finding for the attack with the highest AUC, when it is above the policy's
    maximum; the other attacks above it are named in the message. No finding otherwise."""
    policy = thresholds or MembershipThresholds()
    above = sorted(
        (r for r in report.results if r.auc > policy.max_auc), key=lambda r: (-r.auc, -r.tpr_at_1pct_fpr)
    )
    if not above:
        return []
    worst, others = above[0], above[1:]
    also = "; ".join(f"{r.attack} AUC {r.auc:.2f}" for r in others)
    shadows = f", {worst.shadow_models} shadow models" if worst.shadow_models else ""
    message = (
        f"{worst.attack} membership inference reaches AUC {worst.auc:.2f}, above the policy's "
        f"{policy.max_auc:g}; TPR {worst.tpr_at_1pct_fpr:.1%} at 1% FPR and {worst.tpr_at_0_1pct_fpr:.1%} "
        f"at 0.1% FPR, balanced accuracy {worst.balanced_accuracy:.1%} ({worst.members:,} members, "
        f"{worst.non_members:,} non-members{shadows}); accuracy {report.member_accuracy:.1%} on members "
        f"versus {report.non_member_accuracy:.1%} on non-members" + (f"; also {also}" if also else "")
    )
    return [
        Finding.create(
            rule=HIGH_MEMBERSHIP_AUC,
            asset=asset,
            message=message,
            detector=DETECTOR,
            evidence=(
                Metric(
                    name=f"membership_auc[{worst.attack}]",
                    value=round(worst.auc, 6),
                    threshold=policy.max_auc,
                    comparison=">",
                ),
                Metric(name=f"tpr_at_1pct_fpr[{worst.attack}]", value=round(worst.tpr_at_1pct_fpr, 6)),
                Metric(name=f"tpr_at_0.1pct_fpr[{worst.attack}]", value=round(worst.tpr_at_0_1pct_fpr, 6)),
            ),
        )
    ]
