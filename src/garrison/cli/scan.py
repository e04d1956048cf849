"""``garrison scan PATH``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    OutputOption,
    emit,
    load,
    note,
    open_store,
    stdout_is_terminal,
    terminal_width,
)


def scan(
    path: Annotated[
        Path, typer.Argument(help="File or directory to scan.", show_default=False, metavar="PATH")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="console, json, sarif or html.", show_default=False, metavar="FORMAT"
        ),
    ] = None,
    output: OutputOption = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            metavar="SEVERITY",
            help="Exit 1 on findings at or above this severity "
            "(info, low, medium, high, critical). Default: high.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="REPORT",
            help="Earlier JSON or SARIF report: only new findings count.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option(
            "--select",
            metavar="RULE",
            help="Only these rule ids or families (repeatable).",
            show_default=False,
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="RULE",
            help="Leave out these rule ids or families (repeatable).",
            show_default=False,
        ),
    ] = None,
    store: Annotated[
        bool | None,
        typer.Option(
            "--store/--no-store", help="Save the run in the store (default: yes).", show_default=False
        ),
    ] = None,
    allow_incomplete: Annotated[
        bool | None,
        typer.Option(
            "--allow-incomplete",
            help="Exit 0 rather than 3 when something could not be scanned.",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Show progress on stderr.", show_default=False),
    ] = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Scan a file or directory with every detector that applies, and report the findings.

    The run is saved in the store unless --no-store. Exit codes: 0 clean, 1 findings at or
    above --fail-on, 2 usage error, 3 incomplete, 4 internal error.
    """
    from garrison.cli.progress import make_progress
    from garrison.detectors import default_registry
    from garrison.engine import scan_path
    from garrison.report import render
    from garrison.report.baseline import apply_baseline, load_baseline

    loaded = load(
        {
            "format": fmt,
            "fail_on": fail_on,
            "baseline": baseline,
            "select": tuple(select) if select else None,
            "ignore": tuple(ignore) if ignore else None,
            "store": store,
            "allow_incomplete": allow_incomplete,
            "progress": progress,
            "db": db,
        },
        config_file,
    )
    settings = loaded.settings
    registry = default_registry()
    for problem in registry.problems:
        note(f"warning: {problem}")
    fingerprints = load_baseline(settings.baseline) if settings.baseline else None
    report = scan_path(
        path,
        settings=settings,
        registry=registry,
        progress=make_progress(settings.progress),
        target_label=str(path),
    )
    if fingerprints is not None:
        report = apply_baseline(report, fingerprints)
    if settings.store:
        with open_store(loaded) as st:
            st.save_report(report)
    emit(
        render(
            report, settings.format, color=output is None and stdout_is_terminal(), width=terminal_width()
        ),
        output,
    )
    code = report.exit_code(fail_on=settings.fail_on, allow_incomplete=settings.allow_incomplete)
    stored_note = f"run {report.run_id[:12]} saved" if settings.store else "run not saved (--no-store)"
    note(f"{len(report.findings)} findings, {len(report.errors)} errors; {stored_note}; exit {int(code)}")
    raise typer.Exit(int(code))
