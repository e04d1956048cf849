"""The rule for probably mislabelled rows (GAR-DATA-301) and the finding a label scan raises.

Wrong labels are the footprint of label-flipping poisoning (OWASP ML02, Data Poisoning Attack) as
well as of careless annotation; either way the model learns them.
"""

from __future__ import annotations

from garrison.core.assets import Asset
from garrison.core.evidence import Metric
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.data.label_scan import LabelScanResult

__all__ = ["LABEL_ISSUES", "LABEL_RULES", "label_findings"]

LABEL_ISSUES = Rule(
    id="GAR-DATA-301",
    name="label-issues",
    title="Rows of a classification dataset are probably mislabelled",
    severity=Severity.MEDIUM,
    description=(
        "A model fitted without each row (cross-validation) confidently predicts another class than "
        "the row's label, and confident learning (Northcutt et al., 2021) estimates from the "
        "per-class thresholds that the dataset holds mislabelled rows. Wrong labels teach a model "
        "the wrong thing and lower its accuracy; labels flipped on purpose are a data poisoning "
        "attack that plants a targeted misbehaviour."
    ),
    remediation=(
        "Review the flagged rows, most likely first, and relabel or remove those that are wrong; "
        "find out how they got their labels (annotator, pipeline step or contributor) and check "
        "the other rows from the same source. Keep the reviewed dataset under an integrity check."
    ),
    owasp_ml=("ML02",),
    controls=("ISO-42001:A.7.4", "EU-AI-Act:Art-10", "NIST-AI-RMF:MEASURE-2.9"),
    example="train.csv column label: 180 of 1,797 rows probably mislabelled; row 12 'three' → 'eight'",
    tags=("data", "labels", "poisoning"),
)

LABEL_RULES: tuple[Rule, ...] = (LABEL_ISSUES,)
"""Every rule of the label check."""

_DETECTOR = "data.labels"
_SHOWN = 10


def label_findings(result: LabelScanResult, asset: Asset) -> list[Finding]:
    """One finding for the dataset when any row is flagged, none otherwise."""
    if not result.issues:
        return []
    count = len(result.issues)
    top = "; ".join(
        f"row {i.row}: {i.given!r} → {i.suggested!r} ({i.reason})" for i in result.issues[:_SHOWN]
    )
    more = f"; and {count - _SHOWN:,} more" if count > _SHOWN else ""
    message = (
        f"column {result.label!r}: {count:,} of {result.rows:,} rows probably mislabelled "
        f"({result.share:.1%}; confident learning estimates {result.estimated_issue_count:,}, "
        f"method {result.method}); most likely first: {top}{more}"
    )
    return [
        Finding.create(
            rule=LABEL_ISSUES,
            asset=asset,
            message=message,
            detector=_DETECTOR,
            location=Location(column=result.label),
            evidence=(
                Metric(name="label_issue_count", value=float(count)),
                Metric(name="label_issue_share", value=round(result.share, 6)),
            ),
        )
    ]
