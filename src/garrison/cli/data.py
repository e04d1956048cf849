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

from garrison.cli.common import (
    ConfigOption,
    DbOption,
    FailOnOption,
    OutputOption,
    ReportFormatOption,
    StoreFindingsOption,
    emit,
    load,
    note,
    open_store,
)

if TYPE_CHECKING:
    from garrison.data.redact import RedactionReport
    from garrison.data.redact_strategies import Strategy
    from garrison.recognizers.pii_types import Entity

data_app = typer.Typer(
    help="Work on datasets: sanitized copies, schemas, group fairness and label issues.",
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
    from garrison.recognizers.pii_types import Entity

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
    from garrison.data.redact import redact_dataset
    from garrison.data.redact_strategies import Strategy
    from garrison.recognizers.pii_types import Entity

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


_KIND = Annotated[
    str | None,
    typer.Option(
        "--kind",
        metavar="KIND",
        help="csv, tsv, jsonl or parquet (default: detected from the content).",
        show_default=False,
    ),
]


@data_app.command("schema")
def schema(
    source: Annotated[
        Path,
        typer.Argument(help="Dataset file: CSV, TSV, JSON Lines or Parquet (gzip too).", metavar="INPUT"),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Where to write the schema (TOML).", dir_okay=False
        ),
    ],
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", metavar="N", min=1, help="Rows to infer the schema from.")
    ] = 100_000,
    kind: _KIND = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Infer a draft schema from the first rows of a dataset and write it as TOML.

    Each column gets the most specific type every sampled value parses as (integer, number,
    boolean, date, datetime, else string), whether it may be null, its observed min and max, the
    allowed values of a categorical string column, and unique when no sampled value repeats. The
    draft describes the sample: review it, widen bounds and lists, then check data with
    garrison data validate.

    \b
    Examples:
      garrison data schema users.csv -o users.schema.toml
      garrison data schema events.jsonl.gz -o events.schema.toml --sample-rows 20000 --force

    Exit codes: 0 written, 2 usage error (FILE exists without --force), 3 unreadable input.
    """
    from garrison.core.errors import UsageError
    from garrison.data.schema_infer import infer_schema

    if output.exists() and not force:
        raise UsageError(f"{output} exists", hint="pass --force to overwrite it")
    inferred = infer_schema(source, sample_rows=sample_rows, kind=kind)
    emit(inferred.to_toml(), output)
    raise typer.Exit(0)


@data_app.command("validate")
def validate(
    source: Annotated[
        Path,
        typer.Argument(help="Dataset file: CSV, TSV, JSON Lines or Parquet (gzip too).", metavar="INPUT"),
    ],
    schema_file: Annotated[
        Path,
        typer.Option(
            "--schema",
            metavar="FILE",
            help="The schema: TOML, or JSON when it ends in .json.",
            dir_okay=False,
        ),
    ],
    fmt: ReportFormatOption = None,
    output: OutputOption = None,
    fail_on: FailOnOption = None,
    max_examples: Annotated[
        int, typer.Option("--max-examples", metavar="N", min=0, help="Masked example values per check.")
    ] = 5,
    kind: _KIND = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Check a dataset against a declared schema, streaming, and report each broken rule with rows.

    Every value is checked for its column's type, nulls, range, length, allowed values, regex and
    uniqueness; the dataset for required and undeclared columns. One finding per column and check
    (GAR-DATA-201) with the count, the first rows and examples (personal data masked); one per
    missing or unexpected column (GAR-DATA-202); malformed rows are GAR-DATA-101. Findings are
    saved in the store unless --no-store.

    \b
    Examples:
      garrison data validate users.csv --schema users.schema.toml
      garrison data validate events.jsonl --schema events.schema.json --format sarif -o schema.sarif
      garrison data validate orders.parquet --schema orders.toml --fail-on high --no-store

    Exit codes: 0 valid, 1 findings at or above --fail-on, 2 usage or schema error,
    3 unreadable input.
    """
    from garrison.core.events import utc_now
    from garrison.data.schema import load_schema
    from garrison.data.schema_rules import describe, validation_report
    from garrison.data.schema_validate import validate as run_validation

    loaded = load({"format": fmt, "fail_on": fail_on, "store": store, "db": db}, config_file)
    settings = loaded.settings
    declared = load_schema(schema_file)
    started = utc_now()
    result = run_validation(source, declared, max_examples=max_examples, kind=kind)
    label = str(source)
    report = validation_report(result, label=label, started_at=started)
    if settings.store:
        with open_store(loaded) as st:
            st.save_report(report)
    if settings.format == "console" and output is None:
        emit(describe(result, label=label), None)
    else:
        from garrison.report import render

        emit(render(report, settings.format), output)
    for problem in result.problems:
        note(f"note: {problem}")
    code = report.exit_code(fail_on=settings.fail_on)
    raise typer.Exit(int(code))
