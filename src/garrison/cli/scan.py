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
    targets: Annotated[
        list[str],
        typer.Argument(
            help="PATH (a file, a directory or a Hugging Face cache folder); or 'model' followed by a "
            "PATH or a Hugging Face repository id for the focused model scan; or 'data' followed by a "
            "PATH for the focused dataset scan.",
            show_default=False,
            metavar="[model|data] PATH",
        ),
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
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            help="Worker processes; 0 (default) picks one per core for 64 files or more.",
            show_default=False,
        ),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(
            "--digest",
            metavar="MODE",
            help="SHA-256 of each file: auto (files up to digest-max-bytes, 64 MiB), full or none.",
            show_default=False,
        ),
    ] = None,
    revision: Annotated[
        str,
        typer.Option(
            "--revision",
            metavar="REV",
            help="With 'scan model REPO_ID': branch, tag or commit in the local Hugging Face cache.",
        ),
    ] = "main",
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Scan files for hidden code and other risks, and report the findings.

    \b
    garrison scan PATH           every detector on a file, a directory or a Hugging Face cache
    garrison scan data PATH      the focused form for datasets: personal data, secrets and
                                 malformed rows, column by column (CSV, TSV, JSON Lines,
                                 text; Parquet and image metadata with the data extra)
    garrison scan model TARGET   the focused form: only model supply-chain rules; TARGET is a
                                 path or a repository id found in the local Hugging Face cache
                                 (HF_HUB_CACHE, HF_HOME or ~/.cache/huggingface/hub)

    Formats are identified from content, never from the extension. The run is saved in the store
    unless --no-store. Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage error,
    3 incomplete, 4 internal error.

    \b
    Examples:
      garrison scan ./models --format sarif -o garrison.sarif
      garrison scan model ~/.cache/huggingface/hub/models--org--name
      garrison scan model org/name --revision v1.0 --fail-on medium
    """
    from garrison.cli.progress import make_progress
    from garrison.detectors import DATA_RULE_FAMILIES, MODEL_RULE_FAMILIES, default_registry
    from garrison.engine import scan_path
    from garrison.report import render
    from garrison.report.baseline import apply_baseline, load_baseline

    path, label, focused = _target(targets, revision)
    if focused and not select:
        select = list(MODEL_RULE_FAMILIES if focused == "model" else DATA_RULE_FAMILIES)

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
            "digest": digest,
            "jobs": jobs,
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
        target_label=label,
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


def _target(targets: list[str], revision: str) -> tuple[Path, str, str | None]:
    """The path to scan, its label in the report, and the focused form (``model``, ``data``) if any."""
    from garrison.core.errors import UsageError
    from garrison.formats.hfcache import find_snapshot, looks_like_repo_id

    if len(targets) == 1:
        return Path(targets[0]), targets[0], None
    if len(targets) != 2 or targets[0] not in ("model", "data"):
        raise UsageError(
            f"expected PATH, 'model TARGET' or 'data PATH', got {' '.join(targets)!r}",
            hint="scan one path at a time, for example 'garrison scan ./models'",
        )
    form, given = targets
    path = Path(given).expanduser()
    if form == "data" or path.exists() or path.is_symlink() or not looks_like_repo_id(given):
        return path, given, form
    snapshot = find_snapshot(given, revision=revision)
    return snapshot, f"hf://{given}@{snapshot.name}", form
