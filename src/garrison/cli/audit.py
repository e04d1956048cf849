"""``garrison audit verify`` and ``garrison audit log``: the tamper-evident event log."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from garrison.cli.common import ConfigOption, DbOption, emit, load, make_console, note, open_store

app = typer.Typer(
    help="The tamper-evident event log.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)


@app.command("verify")
def verify(
    fmt: Annotated[str, typer.Option("--format", "-f", help="console or json.")] = "console",
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Check every event's hash chain; name the first event modified, deleted, inserted or reordered.

    Exit 0 when the log is intact, 1 when it was tampered with.
    """
    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        verdict = store.verify_events()
    if fmt == "json":
        emit(
            json.dumps(
                {
                    "intact": verdict.intact,
                    "checked": verdict.checked,
                    "problems": [
                        {"kind": p.kind.value, "seq": p.seq, "event_id": p.event_id, "detail": p.detail}
                        for p in verdict.problems
                    ],
                },
                indent=2,
            ),
            None,
        )
    elif verdict.intact:
        noun = "event" if verdict.checked == 1 else "events"
        emit(f"event log intact: {verdict.checked} {noun}, every hash and link checks out", None)
    else:
        first = verdict.problems[0]
        lines = [
            f"event log TAMPERED: first problem at event {first.seq}: {first.kind.value}",
            f"  {first.detail}",
        ]
        if first.event_id:
            lines.append(f"  event id: {first.event_id}")
        if len(verdict.problems) > 1:
            lines.append(f"{len(verdict.problems) - 1} further inconsistencies:")
            lines.extend(f"  - event {p.seq}: {p.kind.value}: {p.detail}" for p in verdict.problems[1:])
        emit("\n".join(lines), None)
    raise typer.Exit(0 if verdict.intact else 1)


@app.command("log")
def log(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many of the latest events.")] = 20,
    fmt: Annotated[str, typer.Option("--format", "-f", help="console or json.")] = "console",
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Show the latest events of the log."""
    from garrison.core.events import format_timestamp

    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        records = store.event_records()[-limit:]
    if fmt == "json":
        emit(
            json.dumps([{"seq": r.seq, "hash": r.hash, **r.event.payload()} for r in records], indent=2), None
        )
        return
    if not records:
        note("the event log is empty")
        return
    from rich.table import Table

    table = Table(title="Events", title_justify="left")
    for header in ("seq", "time (UTC)", "type", "actor", "subject", "hash"):
        table.add_column(header)
    for r in records:
        table.add_row(
            str(r.seq),
            format_timestamp(r.event.occurred_at)[:19],
            r.event.type,
            r.event.actor,
            r.event.subject[:24],
            r.hash[:12],
        )
    make_console().print(table)
