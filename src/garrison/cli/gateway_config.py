"""``garrison gateway roles|routes|limits list|set|delete``: one entry of gateway.yaml at a time.

The file is changed the way the admin API changes it (:func:`garrison.gateway.config_store.edit_config`):
the entry is checked with its model, the whole new file is validated, the admin role must keep its
admin grant, and the file is replaced atomically. Running gateways apply the change within about a
second. Each change is recorded as a ``gateway.config.changed`` event in the gateway's store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli.common import ActorOption, actor_name, emit, note

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", help="gateway.yaml to read and change.", dir_okay=False)
]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="console or json.")]
IfMatchOption = Annotated[
    str | None,
    typer.Option(
        "--if-match",
        help="Change only if the file's SHA-256 is still this (as list --format json shows it).",
        show_default=False,
    ),
]
NameArgument = Annotated[str, typer.Argument(help="The entry's name (a role, a route or a limit).")]
BodyOption = Annotated[
    str | None, typer.Option("--body", help="The entry as YAML or JSON.", show_default=False)
]
BodyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--body-file", help="File holding the entry, YAML or JSON (- for stdin).", show_default=False
    ),
]


def _entry_text(body: str | None, body_file: Path | None) -> Any:
    """The entry from ``--body`` or ``--body-file`` (``-``: stdin), as YAML or JSON."""
    import yaml

    from garrison.core.errors import UsageError

    if (body is None) == (body_file is None):
        raise UsageError("give the entry with exactly one of --body and --body-file")
    if body_file is not None:
        try:
            body = sys.stdin.read() if str(body_file) == "-" else body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {body_file}: {exc}") from None
    try:
        return yaml.safe_load(body or "")
    except yaml.YAMLError as exc:
        raise UsageError(f"the entry is not valid YAML or JSON: {exc}") from None


def _record(config_path: Path, section: str, name: str, action: str, actor: str) -> Any:
    """``before_commit`` for :func:`edit_config`: the change's event in the gateway's store."""

    def record(before: str, after: str) -> None:
        import contextlib

        from garrison.core.events import Event
        from garrison.gateway.config import load_gateway_config
        from garrison.gateway.server import store_url
        from garrison.store import Store

        event = Event(
            type="gateway.config.changed",
            actor=actor,
            subject=f"{section}/{name}",
            data={"section": section, "name": name, "action": action, "before": before, "after": after},
        )
        with contextlib.closing(Store.open(store_url(load_gateway_config(config_path)))) as store:
            store.append_events([event])

    return record


def _group(section: str) -> typer.Typer:
    one = section[:-1]
    group = typer.Typer(
        help=f"The {section} of gateway.yaml: list them, set or delete one.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )

    @group.command("list")
    def list_entries(config: ConfigPath = Path("gateway.yaml"), fmt: FormatOption = "console") -> None:
        """List them as the file writes them (after validating the whole file)."""
        from garrison.core.errors import UsageError
        from garrison.gateway.config_store import read_section

        if fmt not in ("console", "json"):
            raise UsageError(f"--format {fmt!r}: choose console or json")
        found, digest = read_section(config, section)
        if fmt == "json":
            emit(json.dumps({"etag": digest, section: found}, indent=2, ensure_ascii=False), None)
            return
        import yaml

        if not found:
            emit(f"(no {section})", None)
            return
        emit(yaml.safe_dump(found, sort_keys=False, allow_unicode=True).rstrip("\n"), None)

    @group.command("set")
    def set_entry(
        name: NameArgument,
        body: BodyOption = None,
        body_file: BodyFileOption = None,
        config: ConfigPath = Path("gateway.yaml"),
        if_match: IfMatchOption = None,
        actor: ActorOption = None,
    ) -> None:
        """Create or replace one entry (the same checks as the admin API's PUT)."""
        from garrison.gateway.config_store import edit_config, validate_entry

        entry, _ = validate_entry(section, name, _entry_text(body, body_file))
        done = edit_config(
            config,
            section=section,
            name=name,
            entry=entry,
            if_match=if_match,
            before_commit=_record(config, section, name, "put", actor_name(actor)),
        )
        verb = "created" if done.created else "replaced"
        note(f"{one} {name!r} {verb} in {config}; running gateways apply it within about a second")
        emit(done.after, None)

    @group.command("delete")
    def delete_entry(
        name: NameArgument,
        config: ConfigPath = Path("gateway.yaml"),
        if_match: IfMatchOption = None,
        actor: ActorOption = None,
    ) -> None:
        """Remove one entry (the admin role cannot lose its admin grant)."""
        from garrison.gateway.config_store import edit_config

        done = edit_config(
            config,
            section=section,
            name=name,
            entry=None,
            if_match=if_match,
            before_commit=_record(config, section, name, "delete", actor_name(actor)),
        )
        note(f"{one} {name!r} deleted from {config}; running gateways apply it within about a second")
        emit(done.after, None)

    return group


roles_app = _group("roles")
routes_app = _group("routes")
limits_app = _group("limits")
