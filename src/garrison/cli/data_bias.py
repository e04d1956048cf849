"""``garrison data bias``: group fairness of a dataset or of a model's predictions.

The metrics live in :mod:`garrison.data.bias`, the rules in :mod:`garrison.data.bias_rules`; this
command parses, measures, records findings in the store, and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    OutputOption,
    ReportFormatOption,
    StoreFindingsOption,
)

if TYPE_CHECKING:
    from garrison.core.results import ScanReport
    from garrison.data.bias_types import BiasReport

_POLICY = "Policy"


def _console(report: BiasReport) -> str:
    """A table per protected column, then its metrics with pass/fail."""
    from garrison.report.common import printable

    t = report.thresholds
    on = "prediction" if report.on_prediction else "label"
    lines = [
        f"{printable(str(report.path))}: {report.rows:,} rows, selection rate of the {on}"
        + (
            f"; {report.skipped_rows:,} rows without a label or prediction left out"
            if report.skipped_rows
            else ""
        )
    ]
    for column in report.columns:
        lines += ["", f"protected column {printable(column.column)!r}"]
        if column.unsuitable:
            lines.append(f"  unsuitable: {column.unsuitable}")
            continue
        head = f"  {'group':<24} {'rows':>10} {'selection':>10}"
        if report.confusion:
            head += f" {'TPR':>7} {'FPR':>7}"
        lines.append(head)
        for g in column.groups[:50]:
            row = (
                f"  {printable(g.name)[:24]:<24} {g.rows:>10,} {_num(g.selection(report.on_prediction)):>10}"
            )
            if report.confusion:
                row += f" {_num(g.tpr):>7} {_num(g.fpr):>7}"
            lines.append(row + ("" if g.included else "  (too small: left out)"))
        if len(column.groups) > 50:
            lines.append(f"  ... {len(column.groups) - 50:,} more groups")
        checks: list[tuple[str, Any, str, float, bool]] = [
            ("demographic parity difference", column.dp_difference, "<=", t.max_dp_difference, False),
            ("demographic parity ratio", column.dp_ratio, ">=", t.min_dp_ratio, True),
        ]
        if report.confusion:
            checks.append(
                ("equalized odds difference", column.eo_difference, "<=", t.max_eo_difference, False)
            )
        for name, value, op, limit, low_is_bad in checks:
            if value is None:
                lines.append(f"  {name:<30} n/a")
                continue
            bad = value < _exact(limit) if low_is_bad else value > _exact(limit)
            lines.append(
                f"  {name:<30} {_num(value):>7}  {'FAIL' if bad else 'pass'} (policy {op} {limit:g})"
            )
        if report.confusion and column.eo_ratio is not None:
            lines.append(f"  {'equalized odds ratio':<30} {_num(column.eo_ratio):>7}")
        lines += [f"  note: {printable(n)}" for n in column.notes]
    lines += ["", "FLAGGED: disparity above the policy" if report.flagged else "OK: within the policy"]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _exact(limit: float) -> Any:
    from garrison.data.bias_types import exact

    return exact(limit)


def _scan_report(report: BiasReport, started: Any) -> ScanReport:
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.results import ScanReport
    from garrison.data.bias_rules import bias_findings

    asset = Asset(kind=AssetKind.DATASET, locator=str(report.path))
    return ScanReport.of(
        str(report.path), assets=[asset], findings=bias_findings(report, asset), started_at=started
    )


def bias(
    path: Annotated[
        Path,
        typer.Argument(help="A CSV, TSV, JSON Lines or Parquet dataset.", show_default=False, metavar="PATH"),
    ],
    protected: Annotated[
        list[str],
        typer.Option(
            "--protected",
            metavar="COLUMN",
            help="A protected-attribute column; repeatable.",
            show_default=False,
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option("--label", metavar="COLUMN", help="The true outcome column.", show_default=False),
    ] = None,
    prediction: Annotated[
        str | None,
        typer.Option(
            "--prediction", metavar="COLUMN", help="The model's prediction column.", show_default=False
        ),
    ] = None,
    positive: Annotated[
        list[str] | None,
        typer.Option(
            "--positive",
            metavar="VALUE",
            help="A value meaning the positive outcome (any case); repeatable. Default: 1, true, yes.",
            show_default=False,
        ),
    ] = None,
    max_dp_difference: Annotated[
        float | None,
        typer.Option(
            "--max-dp-difference",
            metavar="X",
            min=0,
            max=1,
            rich_help_panel=_POLICY,
            help="Flag a demographic parity difference above X. Default: [bias] in garrison.toml, else 0.1.",
            show_default=False,
        ),
    ] = None,
    min_dp_ratio: Annotated[
        float | None,
        typer.Option(
            "--min-dp-ratio",
            metavar="X",
            min=0,
            max=1,
            rich_help_panel=_POLICY,
            help="Flag a demographic parity ratio below X. Default: [bias] in garrison.toml, else 0.8.",
            show_default=False,
        ),
    ] = None,
    max_eo_difference: Annotated[
        float | None,
        typer.Option(
            "--max-eo-difference",
            metavar="X",
            min=0,
            max=1,
            rich_help_panel=_POLICY,
            help="Flag an equalized odds difference above X. Default: [bias] in garrison.toml, else 0.1.",
            show_default=False,
        ),
    ] = None,
    min_group_rows: Annotated[
        int | None,
        typer.Option(
            "--min-group-rows",
            metavar="N",
            min=1,
            help="Leave smaller groups out of the metrics. Default: [bias] in garrison.toml, else 30.",
            show_default=False,
        ),
    ] = None,
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Measure group fairness: selection rates, demographic parity and equalized odds per protected column.

    With --prediction, selection rates are of the model's predictions; with --label as well, true
    and false positive rates give equalized odds. With --label alone, the rates are the dataset's
    base rates: disparity in the training data itself. Metrics follow fairlearn's definitions;
    groups under --min-group-rows rows are shown but not compared. A value exactly at a threshold
    is within the policy. The policy options default to the [bias] table of garrison.toml
    (max-dp-difference, min-dp-ratio, max-eo-difference, min-group-rows), then to built-in values.

    \b
    Examples:
      garrison data bias loans.csv --protected sex --protected race --label approved
      garrison data bias preds.parquet --protected sex --label y --prediction y_hat --format json

    Exit codes: 0 within the policy, 1 disparity above the policy, 2 usage error, 3 unreadable input.
    """
    from garrison.cli.common import load, publish
    from garrison.core.events import utc_now
    from garrison.data.bias import DEFAULT_POSITIVE, bias_report
    from garrison.data.bias_types import BiasThresholds

    loaded = load(
        {
            "format": fmt,
            "store": store,
            "db": db,
            "bias_max_dp_difference": max_dp_difference,
            "bias_min_dp_ratio": min_dp_ratio,
            "bias_max_eo_difference": max_eo_difference,
            "bias_min_group_rows": min_group_rows,
        },
        config_file,
    )
    settings = loaded.settings
    thresholds = BiasThresholds.from_settings(settings)
    started = utc_now()
    result = bias_report(
        path,
        protected=protected,
        label=label,
        prediction=prediction,
        positive=tuple(positive) if positive else DEFAULT_POSITIVE,
        thresholds=thresholds,
        min_group_rows=settings.bias_min_group_rows,
    )
    report = _scan_report(result, started)
    publish(loaded, report, output, console=_console(result), details=result.to_dict())
    raise typer.Exit(1 if result.flagged else 0)
