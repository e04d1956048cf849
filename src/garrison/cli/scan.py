"""``garrison scan PATH``: the Typer command; the work is :func:`garrison.cli.scan_run.run_scan`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.common import ConfigOption, DbOption, OutputOption


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
    from garrison.cli.scan_run import run_scan

    code = run_scan(
        targets=targets,
        fmt=fmt,
        output=output,
        fail_on=fail_on,
        baseline=baseline,
        select=select,
        ignore=ignore,
        store=store,
        allow_incomplete=allow_incomplete,
        progress=progress,
        jobs=jobs,
        digest=digest,
        revision=revision,
        db=db,
        config_file=config_file,
    )
    raise typer.Exit(code)
