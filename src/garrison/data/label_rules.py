"""The rule for probably mislabelled rows (GAR-DATA-301) and the finding a label scan raises.

Wrong labels are the footprint of label-flipping poisoning (OWASP ML02, Data Poisoning Attack) as
well as of careless annotation; either way the model learns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garrison.core.assets import Asset
from garrison.core.evidence import Metric
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Severity

if TYPE_CHECKING:
    from garrison.data.label_scan import LabelScanResult

__all__ = ["DUPLICATE_CONFLICTS", "LABEL_ISSUES", "LABEL_RULES", "OUTLIERS", "label_findings"]

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

DUPLICATE_CONFLICTS = Rule(
    id="GAR-DATA-302",
    name="conflicting-duplicates",
    title="Identical or near-identical rows carry different labels",
    severity=Severity.MEDIUM,
    description=(
        "Rows whose features are identical, or closer than a fifth of the typical distance between "
        "neighbouring rows (standardised features), carry different labels. At most one of the "
        "labels can be right. Copying real samples under another label is the cheapest "
        "label-flipping attack; duplicated records merged from two sources with disagreeing labels "
        "do the same damage by accident."
    ),
    remediation=(
        "Keep one row of each group with the right label and drop the others; find out which "
        "source or pipeline step produced the copies. Deduplicate before training."
    ),
    owasp_ml=("ML02",),
    atlas=("AML.T0020",),
    controls=("ISO-42001:A.7.4", "EU-AI-Act:Art-10", "NIST-AI-RMF:MEASURE-2.9"),
    example="train.csv: 20 groups of duplicate rows with conflicting labels; rows 12, 1802: '3' vs '8'",
    tags=("data", "labels", "poisoning", "duplicates"),
)

OUTLIERS = Rule(
    id="GAR-DATA-303",
    name="outlier-rows",
    title="Rows lie far from the rest of the dataset",
    severity=Severity.LOW,
    description=(
        "Rows whose mean distance to their nearest neighbours (standardised features) is at least "
        "three times the dataset's median. Injected out-of-distribution samples, corrupted records "
        "and unit or encoding errors stand out this way; so do rare but genuine cases, which is "
        "why the finding is low severity and the rows are for review."
    ),
    remediation=(
        "Review the flagged rows, most outlying first: fix corrupted values, drop injected or "
        "out-of-scope rows, and keep rare genuine cases (consider collecting more like them)."
    ),
    owasp_ml=("ML02",),
    controls=("ISO-42001:A.7.4", "EU-AI-Act:Art-10"),
    example="train.csv: 20 rows far from the rest; row 1817 (label '4') 5.1x the median neighbour distance",
    tags=("data", "poisoning", "outliers"),
)

LABEL_RULES: tuple[Rule, ...] = (LABEL_ISSUES, DUPLICATE_CONFLICTS, OUTLIERS)
"""Every rule of the label check."""

_DETECTOR = "data.labels"
_SHOWN = 10


def label_findings(result: LabelScanResult, asset: Asset) -> list[Finding]:
    """Up to three findings for the dataset: label issues, conflicting duplicates, outliers."""
    return [*_issue_findings(result, asset), *_suspect_findings(result, asset)]


def _suspect_findings(result: LabelScanResult, asset: Asset) -> list[Finding]:
    found = []
    if result.duplicates:
        count = len(result.duplicates)
        top = "; ".join(
            f"rows {', '.join(map(str, g.rows[:4]))}{'…' if len(g.rows) > 4 else ''}: "
            f"{' vs '.join(repr(v) for v in dict.fromkeys(g.labels))}{' (exact)' if g.exact else ''}"
            for g in result.duplicates[:_SHOWN]
        )
        more = f"; and {count - _SHOWN:,} more" if count > _SHOWN else ""
        found.append(
            Finding.create(
                rule=DUPLICATE_CONFLICTS,
                asset=asset,
                message=(
                    f"column {result.label!r}: {count:,} groups of duplicate rows with conflicting "
                    f"labels: {top}{more}"
                ),
                detector=_DETECTOR,
                location=Location(column=result.label),
                evidence=(Metric(name="conflicting_duplicate_groups", value=float(count)),),
            )
        )
    if result.outliers:
        count = len(result.outliers)
        top = ", ".join(f"row {o.row} ({o.score:.1f}x)" for o in result.outliers[:_SHOWN])
        more = f" and {count - _SHOWN:,} more" if count > _SHOWN else ""
        found.append(
            Finding.create(
                rule=OUTLIERS,
                asset=asset,
                message=(
                    f"{count:,} of {result.rows:,} rows far from the rest (mean distance to their nearest "
                    f"neighbours at least 3x the median): {top}{more}"
                ),
                detector=_DETECTOR,
                evidence=(Metric(name="outlier_count", value=float(count)),),
            )
        )
    return found


def _issue_findings(result: LabelScanResult, asset: Asset) -> list[Finding]:
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
