"""Commands over the store: ``findings``, ``report`` and ``runs``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    OutputOption,
    emit,
    load,
    make_console,
    open_store,
    stdout_is_terminal,
    terminal_width,
)


def findings(
    run: Annotated[str, typer.Option("--run", help="Run id (or a prefix of one), or 'latest'.")] = "latest",
    severity: Annotated[
        str | None,
        typer.Option("--severity", help="Only findings at or above this severity.", show_default=False),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="Only these rule ids or families (repeatable).", show_default=False),
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option("--asset", help="Only assets whose path matches this glob.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many.", show_default=False)
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="console or json.")] = "console",
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """List stored findings of a run, filtered by severity, rule and asset."""
    from garrison.core.errors import UsageError
    from garrison.core.severity import Severity
    from garrison.detectors import default_registry

    if fmt not in ("console", "json"):
        raise UsageError(f"--format {fmt!r}: findings are listed as console or json")
    loaded = load({"db": db}, config_file)
    registry = default_registry()
    rule_ids = registry.match_rules(rule) if rule else None
    minimum = Severity.parse(severity, where="--severity") if severity else None
    with open_store(loaded) as store:
        found = store.query_findings(
            registry=registry,
            run_id=run,
            min_severity=minimum,
            rule_ids=rule_ids,
            asset_glob=asset,
            limit=limit,
        )
    if fmt == "json":
        from garrison.report.json import finding_to_dict

        emit(json.dumps([finding_to_dict(f) for f in found], indent=2), None)
    else:
        from garrison.report.console import render_findings_table

        emit(render_findings_table(found, color=stdout_is_terminal(), width=terminal_width()), None)


def report(
    run: Annotated[str, typer.Argument(help="Run id (or a prefix of one), or 'latest'.")] = "latest",
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="console, json, sarif or html.", show_default=False)
    ] = None,
    output: OutputOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Render a stored run in any report format."""
    from garrison.detectors import default_registry
    from garrison.report import render

    loaded = load({"db": db, "format": fmt}, config_file)
    with open_store(loaded) as store:
        scan_report = store.load_report(run, default_registry())
    emit(
        render(
            scan_report,
            loaded.settings.format,
            color=output is None and stdout_is_terminal(),
            width=terminal_width(),
        ),
        output,
    )


def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs, newest first.")] = 20,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """List stored scan runs, newest first."""
    from rich.table import Table

    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        summaries = store.list_runs(limit=limit)
    table = Table(title="Scan runs", title_justify="left")
    for header in ("run", "started (UTC)", "target", "status", "critical", "high", "medium", "low", "info"):
        numeric = header in ("critical", "high", "medium", "low", "info")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=header != "target")
    for summary in summaries:
        counts = {s.label: n for s, n in summary.counts.items()}
        table.add_row(
            summary.run_id[:12],
            summary.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            summary.target,
            summary.status,
            *(str(counts.get(k, 0)) for k in ("critical", "high", "medium", "low", "info")),
        )
    console = make_console()
    if summaries:
        console.print(table)
    else:
        console.print("No scan runs stored yet. Run 'garrison scan PATH' first.")
