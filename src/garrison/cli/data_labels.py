"""``garrison data labels``: the rows of a classification dataset whose label is probably wrong.

The loading lives in :mod:`garrison.data.label_scan`, confident learning in
:mod:`garrison.data.labels`, the rule in :mod:`garrison.data.label_rules`; this command parses,
examines, records the finding in the store, and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    FailOnOption,
    OutputOption,
    ReportFormatOption,
    StoreFindingsOption,
)

if TYPE_CHECKING:
    from garrison.core.results import ScanReport
    from garrison.data.label_scan import LabelScanResult

_SHOWN = 20


def _console(result: LabelScanResult) -> str:
    """The summary line, then the most likely issues as a table."""
    from garrison.report.common import printable

    count = len(result.issues)
    lines = [
        f"{printable(str(result.path))}: {count:,} of {result.rows:,} rows probably mislabelled in "
        f"column {printable(result.label)!r} ({result.share:.1%}; estimated "
        f"{result.estimated_issue_count:,}; method {result.method}; {len(result.features)} features, "
        f"{len(result.classes)} classes)"
    ]
    if result.issues:
        lines += ["", f"{'row':>8}  {'given':<16} {'suggested':<16} {'p':>5}  reason"]
        for issue in result.issues[:_SHOWN]:
            lines.append(
                f"{issue.row:>8}  {printable(issue.given)[:16]:<16} {printable(issue.suggested)[:16]:<16} "
                f"{issue.given_probability:>5.2f}  {printable(issue.reason)}"
            )
        if count > _SHOWN:
            lines.append(f"{'':>8}  ... {count - _SHOWN:,} more")
    if result.duplicates:
        lines += ["", f"{len(result.duplicates):,} groups of duplicate rows with conflicting labels:"]
        for group in result.duplicates[:_SHOWN]:
            labels = " vs ".join(repr(printable(v)) for v in dict.fromkeys(group.labels))
            kind = "exact" if group.exact else f"distance {group.distance:.2f}"
            lines.append(f"  rows {', '.join(map(str, group.rows))}: {labels} ({kind})")
    if result.outliers:
        lines += ["", f"{len(result.outliers):,} outlying rows (mean neighbour distance over the median):"]
        lines.append("  " + ", ".join(f"{o.row} ({o.score:.1f}x)" for o in result.outliers[:_SHOWN]))
    lines += [f"note: {printable(n)}" for n in result.notes]
    flagged = [
        name
        for name, present in (
            ("probable label issues", result.issues),
            ("conflicting duplicates", result.duplicates),
            ("outliers", result.outliers),
        )
        if present
    ]
    lines += [
        "",
        f"FLAGGED: {', '.join(flagged)}"
        if flagged
        else "OK: no label issues, conflicting duplicates or outliers",
    ]
    return "\n".join(lines)


def _scan_report(result: LabelScanResult, started: Any) -> ScanReport:
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.results import ScanReport
    from garrison.data.label_rules import label_findings

    asset = Asset(kind=AssetKind.DATASET, locator=str(result.path))
    return ScanReport.of(
        str(result.path), assets=[asset], findings=label_findings(result, asset), started_at=started
    )


def labels(
    path: Annotated[
        Path,
        typer.Argument(help="A CSV, TSV, JSON Lines or Parquet dataset.", show_default=False, metavar="PATH"),
    ],
    label: Annotated[
        str,
        typer.Option("--label", metavar="COLUMN", help="The label column.", show_default=False),
    ],
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            metavar="COLUMN",
            help="A feature column; repeatable. Default: every numeric column but the label.",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", metavar="COLUMN", help="Leave this column out; repeatable.", show_default=False
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="METHOD",
            help="prune_by_margin, prune_by_noise_rate, prune_by_class, both or confident_joint.",
        ),
    ] = "prune_by_margin",
    max_rows: Annotated[
        int,
        typer.Option(
            "--max-rows", metavar="N", min=1, help="Refuse a dataset with more labelled rows than N."
        ),
    ] = 100_000,
    duplicates: Annotated[
        bool,
        typer.Option(
            "--duplicates/--no-duplicates", help="Also look for duplicate rows with conflicting labels."
        ),
    ] = True,
    outliers: Annotated[
        bool, typer.Option("--outliers/--no-outliers", help="Also look for rows far from the rest.")
    ] = True,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Find mislabelled rows (confident learning), duplicates with conflicting labels, and outliers.

    A model is fitted by 5-fold cross-validation on the numeric feature columns, so each row is
    judged by a model that never saw it; rows whose label the model confidently contradicts are
    flagged, most likely first (GAR-DATA-301, one finding per dataset). Rows identical or nearly
    identical to others but labelled differently (GAR-DATA-302) and rows far from every other row
    (GAR-DATA-303, low) are reported too. Empty feature values are
    imputed with the column mean; a value that is not a number is an error. The whole dataset is
    held in memory: datasets over --max-rows labelled rows are refused.

    \b
    Examples:
      garrison data labels train.csv --label digit
      garrison data labels train.parquet --label y --exclude id --format json -o labels.json
      garrison data labels train.csv --label y --fail-on medium --no-store

    Exit codes: 0 no findings at or above --fail-on, 1 findings at or above it, 2 usage error,
    3 unreadable input.
    """
    from garrison.cli.common import load, publish
    from garrison.core.events import utc_now
    from garrison.data.label_scan import label_scan

    loaded = load({"format": fmt, "fail_on": fail_on, "store": store, "db": db}, config_file)
    settings = loaded.settings
    started = utc_now()
    result = label_scan(
        path,
        label=label,
        features=feature or None,
        exclude=tuple(exclude or ()),
        method=method,
        max_rows=max_rows,
        duplicates=duplicates,
        outliers=outliers,
    )
    report = _scan_report(result, started)
    publish(loaded, report, output, console=_console(result), details=result.to_dict())
    raise typer.Exit(int(report.exit_code(fail_on=settings.fail_on)))
