"""``garrison audit verify|log|export|recover``: the tamper-evident event log."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    OutputOption,
    emit,
    load,
    make_console,
    note,
    open_store,
)

if TYPE_CHECKING:
    from garrison.core.eventlog import LogRecord
    from garrison.store import Store

#: Records read per query while exporting.
_EXPORT_PAGE = 1_000

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


@app.command("export")
def export(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Only events at or after this ISO 8601 time (2026-11-26 or 2026-11-26T10:00:00Z; UTC if "
            "no zone is given).",
            show_default=False,
        ),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="Only events of this type; a glob such as 'gateway.*' works. Repeatable.",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Write the event log as JSON lines, oldest first: seq, hash, prev_hash and the event's fields.

    Streams page by page, so a log of any size is exported in bounded memory.
    """
    from garrison.core.errors import UsageError

    after = _parse_since(since) if since is not None else None
    types = tuple(event_type or ())
    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        records = _filtered(_all_records(store), after=after, types=types)
        if output is None:
            count = _write_lines(records, sys.stdout)
            sys.stdout.flush()
        else:
            target = output.expanduser()
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as handle:
                        count = _write_lines(records, handle)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            except OSError as exc:
                raise UsageError(f"cannot write the export to {output}: {exc.strerror or exc}") from None
            note(f"{count} events written to {target}")


@app.command("recover")
def recover(
    journal_dir: Annotated[
        Path,
        typer.Option(
            "--journal-dir", metavar="DIR", help="The gateway's audit journal folder.", file_okay=False
        ),
    ],
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Append to the log the events that gateway processes journalled but had not stored when they died.

    Journals of processes still running are left alone. Safe to run any number of times.
    """
    from garrison.gateway.audit import recover_journals

    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        count = recover_journals(journal_dir, store)
    note(f"{count} events recovered from {journal_dir}")


@app.command("ship")
def ship(
    journal_dir: Annotated[
        Path,
        typer.Option(
            "--journal-dir", metavar="DIR", help="The gateway's audit journal folder.", file_okay=False
        ),
    ],
    interval_ms: Annotated[
        int, typer.Option("--interval-ms", min=10, max=60_000, help="How often to look for new lines.")
    ] = 200,
    parent_pid: Annotated[
        int | None,
        typer.Option(
            "--parent-pid",
            metavar="PID",
            help="Stop (after a last pass) once this process is gone; the gateway passes its own.",
        ),
    ] = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Follow the gateway's audit journals and append their events to the log, until stopped.

    `garrison gateway serve` runs this beside its workers, so no worker spends its time on the
    store. SIGTERM or Ctrl-C stops it after a last pass, and so does the end of the process named
    by --parent-pid (a gateway killed with SIGKILL leaves no shipper behind). One per journal folder.
    """
    import signal

    from garrison.gateway.audit import follow_journals

    loaded = load({"db": db}, config_file)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid is not None:
        threading.Thread(target=_stop_when_gone, args=(parent_pid, stop), daemon=True).start()
    with open_store(loaded) as store:
        count = follow_journals(journal_dir, store, interval_s=interval_ms / 1000, stop=stop)
    note(f"{count} events shipped from {journal_dir}")


def _stop_when_gone(pid: int, stop: threading.Event, interval_s: float = 0.5) -> None:
    """Set ``stop`` once process ``pid`` has ended (this process re-parented, or ``pid`` gone)."""
    while not stop.wait(interval_s):
        if os.getppid() != pid:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop.set()
            except PermissionError:  # alive, owned by someone else
                pass


def _parse_since(text: str) -> datetime:
    from garrison.core.errors import UsageError

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not an ISO 8601 time", hint="use 2026-11-26 or 2026-11-26T10:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _all_records(store: Store) -> Iterator[LogRecord]:
    after: int | None = None
    while True:
        page = store.event_records(limit=_EXPORT_PAGE, after_seq=after)
        yield from page
        if len(page) < _EXPORT_PAGE:
            return
        after = page[-1].seq


def _filtered(
    records: Iterator[LogRecord], *, after: datetime | None, types: tuple[str, ...]
) -> Iterator[LogRecord]:
    for record in records:
        if after is not None and record.event.occurred_at < after:
            continue
        if types and not any(fnmatch.fnmatchcase(record.event.type, t) for t in types):
            continue
        yield record


def _write_lines(records: Iterator[LogRecord], handle: IO[str]) -> int:
    count = 0
    for record in records:
        line = {
            "seq": record.seq,
            "hash": record.hash,
            "prev_hash": record.prev_hash,
            **record.event.payload(),
        }
        handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count
