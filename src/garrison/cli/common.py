"""Pieces every command shares: settings from flags, the store, writing output."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from garrison.core.config import LoadedSettings
    from garrison.core.results import ScanReport
    from garrison.store import Store

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Configuration file (garrison.toml or pyproject.toml).",
        show_default=False,
        dir_okay=False,
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Store URL or SQLite file. Default: .garrison/garrison.db.",
        show_default=False,
    ),
]
ReportFormatOption = Annotated[
    str | None,
    typer.Option(
        "--format", "-f", metavar="FORMAT", help="console, json, sarif or html.", show_default=False
    ),
]
FailOnOption = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        metavar="SEVERITY",
        help="Exit 1 on findings at or above this severity (info, low, medium, high, critical). "
        "Default: the settings' fail_on.",
        show_default=False,
    ),
]
StoreFindingsOption = Annotated[
    bool | None,
    typer.Option("--store/--no-store", help="Save the findings in the store.", show_default=False),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report to this file instead of stdout.",
        show_default=False,
        dir_okay=False,
    ),
]


ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who is acting, for the event log. Default: cli:<login name>.", show_default=False
    ),
]


def actor_name(actor: str | None) -> str:
    """``--actor`` as given, else ``cli:<login name>`` (``cli`` where the login name is unknown)."""
    if actor:
        return actor
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def load(flags: dict[str, Any], config_file: Path | None) -> LoadedSettings:
    """Settings from every layer, with ``flags`` (only those given) on top."""
    from garrison.core.config import load_settings

    return load_settings({k: v for k, v in flags.items() if v is not None}, config_file=config_file)


def open_store(loaded: LoadedSettings) -> Store:
    """Open the store the settings name."""
    from garrison.store import Store

    return Store.open(loaded.settings.db_url(loaded.root))


def emit(text: str, output: Path | None) -> None:
    """Write a rendered report to ``output`` atomically, or to stdout."""
    from garrison.core.text import visible

    text = visible(text)  # a file name that is not UTF-8 cannot be written as it is (core.text)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    from garrison.core.errors import UsageError

    target = output.expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # a report is an ordinary file, not mkstemp's private one
        os.replace(tmp, target)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {output}: {exc.strerror or exc}") from None
    note(f"report written to {target}")


def publish(
    loaded: LoadedSettings,
    report: ScanReport,
    output: Path | None,
    *,
    console: str,
    details: dict[str, Any],
) -> None:
    """Save an analysis's report in the store (unless ``--no-store``) and write it in the chosen format.

    ``console`` is the command's own text; JSON is ``details`` with the standard report under
    ``"report"``; SARIF and HTML are the standard renderers.
    """
    import json

    settings = loaded.settings
    if settings.store:
        with open_store(loaded) as st:
            st.save_report(report)
    if settings.format == "console":
        emit(console, output)
        return
    from garrison.report import render

    if settings.format == "json":
        body = details | {"report": json.loads(render(report, "json"))}
        emit(json.dumps(body, indent=2, ensure_ascii=False), output)
    else:
        emit(render(report, settings.format), output)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr (stdout carries only the report)."""
    sys.stderr.write(message + "\n")


def stdout_is_terminal() -> bool:
    """Whether stdout is an interactive terminal (colours, live tables)."""
    return sys.stdout.isatty()


def terminal_width() -> int | None:
    """The terminal's width when stdout is one, else ``None`` (renderers pick a fixed width)."""
    import shutil

    return shutil.get_terminal_size((120, 40)).columns if stdout_is_terminal() else None


def make_console() -> Any:
    """A rich console for stdout: the terminal's width, or a wide fixed width when piped."""
    import shutil

    from rich.console import Console

    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((120, 40)).columns if tty else 160
    return Console(highlight=False, soft_wrap=False, force_terminal=tty or None, width=width)
