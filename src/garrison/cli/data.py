"""``garrison data``: commands that change datasets. ``garrison data redact`` writes a sanitized copy.

The work is in :mod:`garrison.data.redact`; ``docs/data-security.md`` (Redaction) explains the
strategies. The command parses, reads the key from the environment, calls the library and reports.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from garrison.cli.common import emit, note

if TYPE_CHECKING:
    from garrison.data.pii_types import Entity
    from garrison.data.redact import RedactionReport
    from garrison.data.redact_strategies import Strategy

data_app = typer.Typer(
    help="Change datasets: write sanitized copies.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

_STRATEGIES = "mask, token, drop, hash or fake"


def _strategy(text: str, flag: str) -> Strategy:
    from garrison.core.errors import UsageError
    from garrison.data.redact_strategies import Strategy

    try:
        return Strategy(text.strip().lower())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: use {_STRATEGIES}") from None


def _entity(text: str, flag: str) -> Entity:
    from garrison.core.errors import UsageError
    from garrison.data.pii_types import Entity

    try:
        return Entity(text.strip().lower().replace("_", "-"))
    except ValueError:
        names = ", ".join(e.value for e in Entity)
        raise UsageError(f"{flag} {text!r} is not an entity", hint=f"use one of {names}") from None


def _render(report: RedactionReport, seconds: float) -> str:
    lines = [
        f"wrote {report.output}: {report.rows_written:,} of {report.rows_read:,} row(s), "
        f"{report.rows_changed:,} changed, in {seconds:.2f} s"
    ]
    for change in report.changes:
        where = f"column {change.column!r}" if change.column is not None else "text"
        examples = f"; e.g. {', '.join(change.examples)}" if change.examples else ""
        lines.append(
            f"  {where}: {change.values:,} {change.entity.value} value(s) → {change.strategy.value}{examples}"
        )
    if not report.changes:
        lines.append("  no personal data or secrets found; the copy is unchanged")
    if report.dropped_columns:
        lines.append(f"  columns dropped: {', '.join(report.dropped_columns)}")
    if report.unscanned_columns:
        lines.append(f"  not text, copied unscanned: {', '.join(report.unscanned_columns)}")
    if report.fake_generator:
        scope = "stable across runs with this key" if report.keyed else "per run (no key)"
        lines.append(f"  fake values: {report.fake_generator}, {scope}")
    if report.problem_count:
        lines.append(f"  {report.problem_count:,} read problem(s):")
        lines.extend(f"    {p.message}" for p in report.problems)
    return "\n".join(lines)


@data_app.command("redact")
def redact(
    source: Annotated[
        Path,
        typer.Argument(
            help="Dataset file: CSV, TSV, JSON Lines, Parquet or text (gzip too).",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Where to write the sanitized copy (same format; gzip when it ends in .gz).",
            show_default=False,
            dir_okay=False,
        ),
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", metavar="STRATEGY", help=f"{_STRATEGIES}.")
    ] = "mask",
    entity_strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--entity-strategy",
            metavar="ENTITY=STRATEGY",
            help="Another strategy for one entity, e.g. email=hash; repeatable.",
            show_default=False,
        ),
    ] = None,
    key_env: Annotated[
        str | None,
        typer.Option(
            "--key-env",
            metavar="VARIABLE",
            help="Environment variable holding the secret key for hash and fake (16+ bytes).",
            show_default=False,
        ),
    ] = None,
    drop_column: Annotated[
        list[str] | None,
        typer.Option(
            "--drop-column", metavar="NAME", help="Remove this column whole; repeatable.", show_default=False
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="ENTITY",
            help="Redact only this entity (email, phone, credit-card, iban...); repeatable.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="Report as console or json.")
    ] = "console",
) -> None:
    """Write a copy of a dataset with personal data and secrets replaced, and report what changed.

    Strategies: mask (j***@e***.com), token ([EMAIL]), drop (remove the value), hash (a keyed
    pseudonym, email_3f9a1c2b7d0e: the same value gets the same pseudonym with the same key, so
    joins still work), fake (a realistic fake, the same for the same value). hash needs
    --key-env; fake without it maps values consistently within one run only. The key is read from
    the environment, never from the command line. The input is never changed; the copy is written
    to a temporary file and renamed into place when complete. The report never shows an original.

    \b
    Examples:
      garrison data redact users.csv -o users.clean.csv
      garrison data redact events.jsonl -o clean.jsonl --strategy token --only email --only phone
      export REDACT_KEY=$(openssl rand -hex 32)
      garrison data redact orders.parquet -o orders.clean.parquet --strategy hash --key-env REDACT_KEY
      garrison data redact crm.csv -o crm.clean.csv --entity-strategy email=hash \\
          --entity-strategy credit-card=drop --key-env REDACT_KEY --drop-column notes

    Exit codes: 0 written, 2 usage error (bad flag, missing key, OUTPUT exists), 3 unreadable input.
    """
    from garrison.core.errors import UsageError
    from garrison.data.pii_types import Entity
    from garrison.data.redact import redact_dataset
    from garrison.data.redact_strategies import Strategy

    if fmt not in ("console", "json"):
        raise UsageError(f"--format {fmt!r}: garrison data redact writes console or json")
    default = _strategy(strategy, "--strategy")
    plan: dict[Entity, Strategy] = dict.fromkeys(Entity, default)
    for item in entity_strategy or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--entity-strategy {item!r}: write ENTITY=STRATEGY, e.g. email=hash")
        plan[_entity(name, "--entity-strategy")] = _strategy(value, "--entity-strategy")
    key = None
    if key_env is not None:
        if not os.environ.get(key_env):
            raise UsageError(f"--key-env {key_env}: the variable is not set or empty")
        key = os.environ[key_env].encode()
    if Strategy.HASH in plan.values() and key is None:
        raise UsageError(
            "the hash strategy needs a secret key: an unkeyed hash of personal data can be reversed",
            hint="export REDACT_KEY=$(openssl rand -hex 32) and pass --key-env REDACT_KEY",
        )
    if Strategy.FAKE in plan.values() and key is None:
        note("note: no --key-env: fake values are consistent within this run only")
    entities = [_entity(name, "--only") for name in only] if only else None
    started = time.perf_counter()
    report = redact_dataset(
        source,
        output,
        strategy=plan,
        key=key,
        entities=entities,
        drop_columns=tuple(drop_column or ()),
        overwrite=force,
    )
    elapsed = time.perf_counter() - started
    if fmt == "json":
        emit(json.dumps(report.to_dict() | {"seconds": round(elapsed, 3)}, indent=2), None)
    else:
        emit(_render(report, elapsed), None)
    raise typer.Exit(0)
