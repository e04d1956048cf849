"""``garrison config show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.common import ConfigOption, emit, load, make_console

app = typer.Typer(
    help="Inspect configuration.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)


@app.command("show")
def show(
    fmt: Annotated[str, typer.Option("--format", "-f", help="console or json.")] = "console",
    config_file: ConfigOption = None,
) -> None:
    """Show every setting, its value, and where the value came from.

    Precedence, lowest first: defaults, garrison.toml or [tool.garrison] in pyproject.toml,
    GARRISON_* environment variables, command-line flags.
    """
    from garrison.core.config import Settings

    loaded = load({}, config_file)
    values = loaded.settings.model_dump(mode="json")
    if fmt == "json":
        emit(
            json.dumps(
                {
                    "config_file": str(loaded.config_file) if loaded.config_file else None,
                    "settings": {
                        k: {"value": v, "source": str(loaded.sources[k])} for k, v in values.items()
                    },
                },
                indent=2,
            ),
            None,
        )
        return
    from rich.table import Table

    table = Table(title="Settings", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("value")
    table.add_column("from")
    table.add_column("meaning")
    for name, value in values.items():
        shown = value
        if name == "db" and value is None:
            shown = f"(default) {loaded.settings.db_url(loaded.root)}"
        description = Settings.model_fields[name].description or ""
        table.add_row(name.replace("_", "-"), _show(shown), str(loaded.sources[name]), description)
    console = make_console()
    where = loaded.config_file or "none found (defaults, environment and flags only)"
    console.print(f"configuration file: {where}")
    console.print(table)


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, Path):
        return str(value)
    return "(none)" if value is None else str(value)
