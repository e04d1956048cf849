"""``garrison rules list`` and ``garrison rules explain ID``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from garrison.cli.common import emit, stdout_is_terminal, terminal_width

app = typer.Typer(
    help="Rules Garrison can report, with their documentation.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.command("list")
def list_rules(
    fmt: Annotated[str, typer.Option("--format", "-f", help="console or json.")] = "console",
) -> None:
    """List every registered rule: id, name, default severity and title."""
    from garrison.core.errors import UsageError
    from garrison.detectors import default_registry

    registry = default_registry()
    rules = registry.rules()
    if fmt == "json":
        from garrison.report.json import rule_to_dict

        emit(
            json.dumps([rule_to_dict(r) | {"detector": registry.owner(r.id)} for r in rules], indent=2), None
        )
    elif fmt == "console":
        from garrison.report.console import render_rules_table

        emit(render_rules_table(rules, color=stdout_is_terminal(), width=terminal_width() or 180), None)
    else:
        raise UsageError(f"--format {fmt!r}: rules are listed as console or json")


@app.command("explain")
def explain(rule_id: Annotated[str, typer.Argument(help="Rule id, for example GAR-FMT-101.")]) -> None:
    """Print a rule's documentation: what it detects, why it matters, what to do, references."""
    from garrison.core.rules import rule_markdown
    from garrison.detectors import default_registry

    rule = default_registry().rule(rule_id)
    text = rule_markdown(rule)
    if stdout_is_terminal():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        emit(text, None)
