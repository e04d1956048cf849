"""Rules for datasets that break their declared schema, and the findings and report of a validation.

:func:`validation_findings` turns a :class:`~garrison.data.schema_validate.ValidationResult` into
findings: GAR-DATA-201 per column and failed check, GAR-DATA-202 per missing or unexpected column,
and GAR-DATA-101 for rows that could not be read. :func:`validation_report` wraps them in a report
every renderer and the store take; :func:`describe` is the console text.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from garrison.core.assets import Asset, AssetKind
from garrison.core.evidence import Evidence, Metric, Observation
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.data.rules import UNREADABLE_ROWS

if TYPE_CHECKING:
    from garrison.core.results import ScanReport
    from garrison.data.schema_validate import CheckViolations, ValidationResult

__all__ = [
    "SCHEMA_COLUMNS",
    "SCHEMA_RULES",
    "SCHEMA_VIOLATION",
    "describe",
    "validation_findings",
    "validation_report",
]

_DETECTOR = "data.validate"
_QUALITY = ("ISO-42001:A.7.4", "EU-AI-Act:Art-10", "NIST-AI-RMF:MEASURE-2.1")

SCHEMA_VIOLATION = Rule(
    id="GAR-DATA-201",
    name="schema-violation",
    title="Values of a dataset column break its declared schema",
    severity=Severity.HIGH,
    description=(
        "Rows hold values the dataset's schema does not allow: the wrong type, a missing value in a "
        "column that is not nullable, a number or date out of range, a value too short or too long, "
        "outside the allowed list, not matching the column's pattern, or repeated in a unique column. "
        "Training on such rows skews a model silently, and unexpected values are how poisoned or "
        "injected records get past a pipeline. One finding per column and check, with the count, "
        "the first rows and masked examples."
    ),
    remediation=(
        "Fix the rows at the source, or the pipeline that produced them; if the data is right and "
        "the schema is too strict, widen the schema file and review the change."
    ),
    cwe=("CWE-20",),
    owasp_ml=("ML02",),
    controls=_QUALITY,
    example="data/users.csv column age: 3 of 10,000 rows not between 0 and 120 (first rows 17, 204, 9,311)",
    tags=("data", "quality", "schema"),
)

SCHEMA_COLUMNS = Rule(
    id="GAR-DATA-202",
    name="schema-columns-mismatch",
    title="A dataset lacks a required column or has one its schema does not declare",
    severity=Severity.HIGH,
    description=(
        "The dataset's columns are not those of its schema: a required column is missing (high "
        "severity: every row lacks data the model or its checks rely on) or a column the schema "
        "does not declare has appeared (medium: an export changed, or data was added that nobody "
        "reviewed, personal data included)."
    ),
    remediation=(
        "Restore the missing column at the source; for a new column, review what it holds and "
        "declare it in the schema (or drop it) before the data is used."
    ),
    cwe=("CWE-20",),
    owasp_ml=("ML02",),
    controls=_QUALITY,
    example="data/users.csv: required column email is missing",
    tags=("data", "quality", "schema"),
)

SCHEMA_RULES: tuple[Rule, ...] = (SCHEMA_VIOLATION, SCHEMA_COLUMNS)
"""Every rule of schema validation."""


def _rows(rows: tuple[int, ...]) -> str:
    return ", ".join(f"{r:,}" for r in rows)


def _violation(asset: Asset, result: ValidationResult, item: CheckViolations) -> Finding:
    examples = f"; e.g. {', '.join(item.examples)}" if item.examples else ""
    message = (
        f"column {item.column!r}: {item.count:,} of {result.rows:,} rows fail {item.check} "
        f"(expected {item.expected}); first rows {_rows(item.first_rows)}{examples}"
    )
    evidence: tuple[Evidence, ...] = (
        Observation(name="check", actual=item.check, expected=item.expected),
        Metric(name="rows", value=float(item.count)),
        Metric(name="share", value=round(item.count / result.rows, 4) if result.rows else 0.0),
    )
    return Finding.create(
        rule=SCHEMA_VIOLATION,
        asset=asset,
        message=message,
        detector=_DETECTOR,
        location=Location(column=item.column, row=item.first_rows[0] if item.first_rows else None),
        evidence=evidence,
    )


def _column(asset: Asset, name: str, *, missing: bool) -> Finding:
    what = "required column is missing" if missing else "column is not declared in the schema"
    return Finding.create(
        rule=SCHEMA_COLUMNS,
        asset=asset,
        message=f"column {name!r}: {what}",
        detector=_DETECTOR,
        severity=None if missing else Severity.MEDIUM,
        location=Location(column=name),
        evidence=(Observation(name="column", actual="missing" if missing else "unexpected"),),
    )


def validation_findings(result: ValidationResult, asset: Asset) -> list[Finding]:
    """The findings of a validation; none when the dataset passed and every row was read."""
    findings = [_column(asset, name, missing=True) for name in result.missing_columns]
    findings += [_column(asset, name, missing=False) for name in result.unexpected_columns]
    findings += [_violation(asset, result, item) for item in result.violations]
    if result.read_problem_count:
        shown = "; ".join(
            p.message
            for p in result.read_problems[:5]  # each message names its row (or file) itself
        )
        first = next((p.row for p in result.read_problems if p.row is not None), None)
        findings.append(
            Finding.create(
                rule=UNREADABLE_ROWS,
                asset=asset,
                message=f"{result.read_problem_count:,} malformed rows or values: {shown}",
                detector=_DETECTOR,
                location=Location(row=first),
                evidence=(Metric(name="problems", value=float(result.read_problem_count)),),
            )
        )
    return findings


def validation_report(result: ValidationResult, *, label: str, started_at: datetime) -> ScanReport:
    """A report (for every renderer and the store) of one validation."""
    from garrison.core.results import ScanReport

    asset = Asset(kind=AssetKind.DATASET, locator=label, size=_size(result))
    return ScanReport.of(
        label, assets=[asset], findings=validation_findings(result, asset), started_at=started_at
    )


def _size(result: ValidationResult) -> int | None:
    try:
        return result.path.stat().st_size
    except OSError:
        return None


def describe(result: ValidationResult, *, label: str) -> str:
    """Console text: the verdict, then each problem on its own line."""
    verdict = "valid" if result.valid else "INVALID"
    lines = [f"{label}: {verdict}: {result.rows:,} rows, {len(result.columns)} columns checked"]
    lines += [f"  missing required column {name!r}" for name in result.missing_columns]
    lines += [f"  unexpected column {name!r}" for name in result.unexpected_columns]
    for item in result.violations:
        examples = f"; e.g. {', '.join(item.examples)}" if item.examples else ""
        lines.append(
            f"  {item.column}: {item.check}: {item.count:,} rows (expected {item.expected}); "
            f"first rows {_rows(item.first_rows)}{examples}"
        )
    if result.read_problem_count:
        lines.append(f"  {result.read_problem_count:,} malformed rows or values (GAR-DATA-101)")
    lines += [f"  note: {note}" for note in result.problems]
    return "\n".join(lines)
