"""``garrison keys create|list|revoke|rotate``: the gateway's API keys."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from garrison.cli.common import (
    ActorOption,
    ConfigOption,
    DbOption,
    actor_name,
    emit,
    load,
    make_console,
    note,
    open_store,
)

if TYPE_CHECKING:
    from garrison.gateway.keys import CreatedKey, KeyRecord

app = typer.Typer(
    help="API keys for the gateway (only their hashes are stored).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

FormatOption = Annotated[str, typer.Option("--format", "-f", help="console or json.")]


def _check_format(fmt: str) -> None:
    if fmt not in ("console", "json"):
        from garrison.core.errors import UsageError

        raise UsageError(f"--format {fmt!r}: choose console or json")


def _describe(record: KeyRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "roles": sorted(record.roles),
        "scopes": sorted(record.scopes),
        "status": record.status(),
        "created_at": record.created.isoformat(),
        "expires_at": record.expires.isoformat() if record.expires else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "rotated_from": record.rotated_from,
    }


def _show_created(created: CreatedKey, fmt: str) -> None:
    if fmt == "json":
        emit(json.dumps(_describe(created.record) | {"key": created.key}, indent=2), None)
    else:
        emit(created.key, None)
    note(
        f"created API key {created.record.id} ({created.record.name}); "
        "copy it now: it is stored only as a hash and will not be shown again"
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What or who the key is for.")],
    role: Annotated[list[str], typer.Option("--role", help="Role the key grants (repeatable).")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Limit the key to this scope (repeatable).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 90s, 45m, 12h, 30d, 2w.", show_default=False)
    ] = None,
    fmt: FormatOption = "console",
    actor: ActorOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Create a key and print it once (stdout); only its hash is kept."""
    from garrison.gateway.keys import create_key, parse_duration

    _check_format(fmt)
    lifetime = parse_duration(expires) if expires else None
    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        created = create_key(
            store, name=name, roles=role, scopes=scope or (), expires_in=lifetime, actor=actor_name(actor)
        )
    _show_created(created, fmt)


@app.command("list")
def list_command(
    fmt: FormatOption = "console",
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """List keys: id, name, prefix, roles, status and expiry (never a key or a hash)."""
    from garrison.gateway.keys import list_keys

    _check_format(fmt)
    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        records = list_keys(store)
    if fmt == "json":
        emit(json.dumps([_describe(r) for r in records], indent=2), None)
        return
    if not records:
        note("no API keys yet; garrison keys create makes one")
        return
    from rich.table import Table

    table = Table(title="API keys", title_justify="left")
    for header in ("id", "name", "prefix", "roles", "scopes", "status", "expires (UTC)"):
        table.add_column(header)
    for r in records:
        table.add_row(
            r.id,
            r.name,
            r.prefix + "…",
            ",".join(sorted(r.roles)),
            ",".join(sorted(r.scopes)) or "-",
            r.status(),
            r.expires.strftime("%Y-%m-%d %H:%M") if r.expires else "never",
        )
    make_console().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Key id (from garrison keys list).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the event log.")] = "",
    actor: ActorOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Revoke a key now. The gateway refuses it within its key_refresh_seconds."""
    from garrison.gateway.keys import revoke_key

    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        record = revoke_key(store, key_id, actor=actor_name(actor), reason=reason)
    note(f"API key {record.id} ({record.name}) is revoked")


@app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Key id (from garrison keys list).")],
    grace: Annotated[
        str | None,
        typer.Option("--grace", help="Keep the old key working this long (e.g. 1h).", show_default=False),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="Lifetime of the new key (default: the old key's).", show_default=False
        ),
    ] = None,
    fmt: FormatOption = "console",
    actor: ActorOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Replace a key with a new one (same name, roles, scopes) and revoke the old one, after --grace."""
    from datetime import timedelta

    from garrison.gateway.keys import parse_duration, rotate_key

    _check_format(fmt)
    grace_period = parse_duration(grace) if grace else timedelta(0)
    lifetime = parse_duration(expires) if expires else None
    loaded = load({"db": db}, config_file)
    with open_store(loaded) as store:
        created = rotate_key(store, key_id, actor=actor_name(actor), grace=grace_period, expires_in=lifetime)
    _show_created(created, fmt)
    when = f"in {grace}" if grace else "now"
    note(f"the old key {key_id} is revoked {when}")
