"""Rules for group fairness (GAR-BIAS-*) and the findings a :class:`BiasReport` raises.

Neither CWE nor the OWASP ML Top 10 has an entry for unfair outcomes (ML08 "Model Skewing" is an
attacker skewing a model through its feedback loop, not disparity between groups), so the
reference is MITRE ATLAS AML.T0048.002, the societal harm of an AI system.
"""

from __future__ import annotations

from garrison.core.assets import Asset
from garrison.core.evidence import Evidence, Metric, Observation
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.data.bias_types import BiasReport, ColumnBias

__all__ = ["BIAS_RULES", "DEMOGRAPHIC_PARITY", "EQUALIZED_ODDS", "bias_findings"]

_FAIRNESS = ("NIST-AI-RMF:MEASURE-2.11", "ISO-42001:A.7.4", "EU-AI-Act:Art-10")

DEMOGRAPHIC_PARITY = Rule(
    id="GAR-BIAS-001",
    name="demographic-parity-violation",
    title="Groups of a protected attribute are selected at different rates",
    severity=Severity.MEDIUM,
    description=(
        "The share of rows selected (predicted positive, or labelled positive when the dataset has "
        "no predictions) differs between the groups of a protected attribute by more than the "
        "policy allows: the demographic parity difference (largest minus smallest selection rate) "
        "is above its threshold (default 0.1), or the demographic parity ratio (smallest divided "
        "by largest) is below its threshold (default 0.8, the four-fifths rule). A model trained "
        "on such labels learns the disparity; a model that produces it treats groups unequally."
    ),
    remediation=(
        "Check whether the difference has a legitimate cause; if not, rebalance or reweigh the "
        "training data, drop proxies of the attribute, or apply a fairness constraint or "
        "post-processing, and record the decision. Groups under the minimum size are not compared."
    ),
    atlas=("AML.T0048.002",),
    controls=_FAIRNESS,
    example="data/loans.csv column sex: selection rate 0.30 ('F') vs 0.50 ('M'), difference 0.20 > 0.10",
    tags=("data", "fairness"),
)

EQUALIZED_ODDS = Rule(
    id="GAR-BIAS-002",
    name="equalized-odds-violation",
    title="A model's error rates differ between groups of a protected attribute",
    severity=Severity.MEDIUM,
    description=(
        "The model's true positive rate or false positive rate differs between the groups of a "
        "protected attribute by more than the policy allows: the equalized odds difference (the "
        "larger of the two rate differences, each largest minus smallest) is above its threshold "
        "(default 0.1). One group is then more often wrongly refused, or wrongly accepted, than "
        "another with the same true outcome."
    ),
    remediation=(
        "Look at which rate differs and for which groups; collect more data for the group the model "
        "serves worst, retrain with a fairness constraint, or use per-group decision thresholds "
        "where the law allows, and record the decision."
    ),
    atlas=("AML.T0048.002",),
    controls=_FAIRNESS,
    example="preds.csv column race: TPR 0.62 vs 0.81, FPR 0.10 vs 0.12: equalized odds difference 0.19",
    tags=("data", "fairness", "model"),
)

BIAS_RULES: tuple[Rule, ...] = (DEMOGRAPHIC_PARITY, EQUALIZED_ODDS)
"""Every rule of the bias check."""

_DETECTOR = "data.bias"
_SHOWN = 20


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def group_table(report: BiasReport, column: ColumnBias) -> str:
    """The groups of a column on one line: rows, selection rate, TPR/FPR where measured."""
    parts = []
    for g in column.groups[:_SHOWN]:
        text = f"{g.name!r} {g.rows:,} rows, selection {_fmt(g.selection(report.on_prediction))}"
        if report.confusion:
            text += f", TPR {_fmt(g.tpr)}, FPR {_fmt(g.fpr)}"
        if not g.included:
            text += " (too small, left out)"
        parts.append(text)
    more = f"; and {len(column.groups) - _SHOWN:,} more groups" if len(column.groups) > _SHOWN else ""
    return "; ".join(parts) + more


def bias_findings(report: BiasReport, asset: Asset) -> list[Finding]:
    """One finding per protected column and kind of disparity outside the policy."""
    t = report.thresholds
    on = "prediction" if report.on_prediction else "label"
    findings: list[Finding] = []
    for column in report.columns:
        location = Location(column=column.column)
        table = group_table(report, column)
        if column.dp_flagged(t):
            assert column.dp_difference is not None
            assert column.dp_ratio is not None
            evidence: tuple[Evidence, ...] = (
                Observation(name="selection_on", actual=on),
                Metric(
                    name="demographic_parity_difference",
                    value=round(float(column.dp_difference), 6),
                    threshold=t.max_dp_difference,
                    comparison=">",
                ),
                Metric(
                    name="demographic_parity_ratio",
                    value=round(float(column.dp_ratio), 6),
                    threshold=t.min_dp_ratio,
                    comparison="<",
                ),
            )
            findings.append(
                Finding.create(
                    rule=DEMOGRAPHIC_PARITY,
                    asset=asset,
                    message=(
                        f"column {column.column!r}: selection rates (of the {on}) differ between groups: "
                        f"difference {_fmt(column.dp_difference)} (policy ≤ {t.max_dp_difference:g}), "
                        f"ratio {_fmt(column.dp_ratio)} (policy ≥ {t.min_dp_ratio:g}); {table}"
                    ),
                    detector=_DETECTOR,
                    location=location,
                    evidence=evidence,
                )
            )
        if column.eo_flagged(t):
            assert column.eo_difference is not None
            findings.append(
                Finding.create(
                    rule=EQUALIZED_ODDS,
                    asset=asset,
                    message=(
                        f"column {column.column!r}: error rates differ between groups: equalized odds "
                        f"difference {_fmt(column.eo_difference)} (policy ≤ {t.max_eo_difference:g}; "
                        f"TPR difference {_fmt(column.tpr_difference)}, FPR difference "
                        f"{_fmt(column.fpr_difference)}); {table}"
                    ),
                    detector=_DETECTOR,
                    location=location,
                    evidence=(
                        Metric(
                            name="equalized_odds_difference",
                            value=round(float(column.eo_difference), 6),
                            threshold=t.max_eo_difference,
                            comparison=">",
                        ),
                        Metric(name="equalized_odds_ratio", value=round(float(column.eo_ratio or 0), 6)),
                    ),
                )
            )
    return findings
