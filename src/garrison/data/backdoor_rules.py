"""The rule for backdoor poison in a training set (GAR-DATA-401) and the findings a backdoor scan raises.

A backdoor (BadNets, Gu et al. 2017) is data poisoning with a purpose: samples carrying a trigger are
relabelled to a target class, and the model trained on them obeys the trigger at run time while
behaving normally otherwise. OWASP ML02 (data poisoning) and ML10 (model poisoning); MITRE ATLAS
AML.T0020 (poison training data) and AML.T0018 (backdoor ML model).
"""

from __future__ import annotations

from garrison.core.assets import Asset
from garrison.core.evidence import Metric
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.data.backdoor_scan import BackdoorScanResult

__all__ = ["BACKDOOR_POISON", "BACKDOOR_RULES", "backdoor_findings"]

BACKDOOR_POISON = Rule(
    id="GAR-DATA-401",
    name="backdoor-poison",
    title="Training samples carry a backdoor trigger",
    severity=Severity.HIGH,
    description=(
        "Part of one class of the training set is set apart from the rest of the class (by spectral "
        "signatures or activation clustering), and the difference between that part and the rest, "
        "added to samples of other classes, makes the trained model predict this class: a "
        "transferable trigger. That is the footprint of a backdoor: whoever planted the samples can "
        "make the deployed model output this class for any input that carries the trigger."
    ),
    remediation=(
        "Treat the model as compromised: do not deploy it. Inspect the flagged samples (the trigger "
        "is usually visible once you compare them), find where they came from and remove every "
        "sample from that source, then retrain from the cleaned data and rerun the scan. Keep the "
        "cleaned dataset signed so that a later change is noticed."
    ),
    owasp_ml=("ML02", "ML10"),
    atlas=("AML.T0020", "AML.T0018"),
    controls=("ISO-42001:A.7.4", "EU-AI-Act:Art-10", "NIST-AI-RMF:MEASURE-2.7"),
    example="train.npz class '0': 135 of 269 samples carry a transferable trigger (transplant rate 91%)",
    tags=("data", "poisoning", "backdoor"),
)

BACKDOOR_RULES: tuple[Rule, ...] = (BACKDOOR_POISON,)
"""Every rule of the backdoor scan."""

_DETECTOR = "data.backdoor"
_SHOWN = 10


def backdoor_findings(result: BackdoorScanResult, asset: Asset) -> list[Finding]:
    """One finding per class with flagged samples."""
    findings = []
    for label in result.flagged_classes:
        rows = [r for r in result.flagged if r.label == label]
        shown = ", ".join(r.row for r in rows[:_SHOWN])
        more = f" and {len(rows) - _SHOWN:,} more" if len(rows) > _SHOWN else ""
        findings.append(
            Finding.create(
                rule=BACKDOOR_POISON,
                asset=asset,
                message=(
                    f"class {label!r}: {len(rows):,} of {result.rows:,} samples look like backdoor poison "
                    f"({rows[0].reason.split(': ', 1)[-1]}); most apart first: {shown}{more}"
                ),
                detector=_DETECTOR,
                location=Location(column=f"{result.label_column}={label}"),
                evidence=(Metric(name="backdoor_sample_count", value=float(len(rows))),),
            )
        )
    return findings
