"""gateway.yaml as the admin API and ``garrison gateway roles|routes|limits`` change it, and a running
gateway following the file.

Editing (:func:`edit_config`): under an exclusive lock on the file's folder, the file is read, its
SHA-256 compared with the caller's ``If-Match`` (the ETag), one entry of ``roles``, ``routes`` or
``limits`` replaced or deleted in the YAML document, and the whole new document written to a temporary
file beside it and validated by :func:`~garrison.gateway.config.load_gateway_config`, exactly as at
start-up. The role ``admin.role`` must keep its ``admin`` grant (nobody could use the admin API
otherwise). Only then is the temporary file fsynced and renamed over the original (and the folder
fsynced): a reader sees the old file or the new one, never half of one. PyYAML writes the document
back: keys keep their order and the other sections their content, but comments and formatting are
not kept.

Following (:class:`LiveConfig`): each worker checks the file's SHA-256 at most once per
``interval`` (a read of a small file and a hash, between requests) and, when it changed, validates
the file and builds the routes, roles and limits again; the new set replaces the old one in a single
assignment, so a request in flight finishes with the configuration it started with. A file that
does not validate is refused: the old configuration stays in force and a ``gateway.config.rejected``
event is recorded. Only ``roles``, ``routes``, ``limits`` and ``detectors`` change at run time; a
change to another section (server, auth, audit, the limits backend, …) needs a restart and is
reported once as a warning. Limit counters live in the limits backend, which is kept, so a change
never resets what callers have already used.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from garrison.core.errors import ConfigError, GarrisonError
from garrison.core.events import Event
from garrison.gateway.auth_config import RoleConfig
from garrison.gateway.authz import Authorizer
from garrison.gateway.config import GatewayConfig, load_gateway_config
from garrison.gateway.limits_config import LimitRule
from garrison.gateway.routes import RouteConfig
from garrison.gateway.types import Denied, Principal

if TYPE_CHECKING:
    from garrison.gateway.app import Gateway
    from garrison.gateway.upstream_http import HttpPool

log = logging.getLogger("garrison.gateway.config")

Section = Literal["roles", "routes", "limits"]
#: The sections an entry of which the admin API and the CLI change, and the model of one entry.
ENTRY_MODELS: dict[str, type[BaseModel]] = {"roles": RoleConfig, "routes": RouteConfig, "limits": LimitRule}
#: Sections a running gateway takes from a changed file; the others need a restart.
LIVE_SECTIONS = ("roles", "routes", "limits", "detectors")


class ConfigChangeError(GarrisonError):
    """A change to gateway.yaml was refused; ``status`` is the HTTP status the admin API answers."""

    exit_code = 2

    def __init__(
        self, status: int, reason: str, message: str, *, hint: str | None = None, current: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.current = current
        """With 412: the SHA-256 of the file as it is now."""
        self.status = status
        """404 no such entry, 409 admin lock-out, 412 stale ETag, 422 invalid, 428 no If-Match, 503 I/O."""
        self.reason = reason
        """Short machine-readable reason for the audit log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChange:
    """One change written to gateway.yaml."""

    section: str
    """``roles``, ``routes`` or ``limits``."""
    name: str
    """The entry's name."""
    action: Literal["put", "delete"]
    """Replaced or created (``put``), or removed (``delete``)."""
    created: bool
    """Whether a ``put`` made a new entry."""
    before: str
    """SHA-256 of the file before the change."""
    after: str
    """SHA-256 of the file after it (its new ETag)."""
    config: GatewayConfig
    """The new file's configuration, validated."""


def digest_of(raw: bytes) -> str:
    """The SHA-256 (hex) of a configuration file's bytes: its version and ETag."""
    return hashlib.sha256(raw).hexdigest()


def etag(digest: str) -> str:
    """The ETag header value for a file digest."""
    return f'"{digest}"'


def etag_matches(if_match: str, digest: str) -> bool:
    """Whether an ``If-Match`` header value names ``digest`` (or is ``*``)."""
    tags = [t.strip() for t in if_match.split(",")]
    return any(t == "*" or t.removeprefix("W/").strip('"') == digest for t in tags)


def validate_entry(section: str, name: str, body: Any) -> tuple[dict[str, Any], BaseModel]:
    """Check one entry with its configuration model; return the entry to store and the model.

    Routes and limits carry their name; it is taken from ``name`` when the body leaves it out and must
    equal it otherwise. Raises :class:`ConfigChangeError` (422) naming the first field that is wrong.
    """
    model = ENTRY_MODELS[section]
    if not isinstance(body, dict):
        raise ConfigChangeError(422, "admin_body_invalid", f"a {section[:-1]} must be a JSON object")
    entry = dict(body)
    if section != "roles":
        entry = {"name": name, **entry}  # written first, as people write it
        given = entry["name"]
        if given != name:
            raise ConfigChangeError(
                422, "admin_body_invalid", f"invalid field name: {given!r} differs from {name!r} in the path"
            )
    elif not _role_name_ok(name):
        raise ConfigChangeError(
            422, "admin_body_invalid", f"invalid role name {name!r}: letters, digits and _.:- (at most 64)"
        )
    try:
        return entry, model.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ConfigChangeError(422, "admin_body_invalid", f"invalid field {where}: {first['msg']}") from None


def _role_name_ok(name: str) -> bool:
    try:
        from garrison.gateway.auth_config import RolesConfig

        RolesConfig.model_validate({name: {}})
    except ValidationError:
        return False
    return True


def check_admin_kept(config: GatewayConfig) -> None:
    """Refuse (409) a configuration whose admin role no longer reaches the admin API."""
    role = config.admin.role
    who = Principal(id="config-check", kind="api_key", roles=frozenset({role}))
    try:
        Authorizer(config.roles, admin_role=role).check(who, route="admin", model="*", action="admin")
    except Denied:
        raise ConfigChangeError(
            409,
            "admin_lockout",
            f"the change would leave role {role!r} without the admin grant, so nobody could use the "
            "admin API; it was not made",
            hint=f"role {role!r} needs allow: [{{actions: [admin]}}] (directly or inherited)",
        ) from None


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock shared by every process that edits a file in ``folder`` (flock on the folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load_document(raw: bytes, path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigChangeError(
            422, "config_invalid", f"gateway config {path} is not valid YAML: {exc}"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigChangeError(
            422, "config_invalid", f"gateway config {path} must be a mapping at the top level"
        )
    return document


def _change_document(
    document: dict[str, Any], section: str, name: str, entry: dict[str, Any] | None, path: Path
) -> bool:
    """Apply the change to ``document`` in place; return whether a ``put`` created the entry."""
    current = document.get(section)
    if section == "roles":
        roles = current if isinstance(current, dict) else {} if current is None else None
        if roles is None:
            raise ConfigChangeError(422, "config_invalid", f"gateway config {path}: roles must be a mapping")
        document["roles"] = roles
        if entry is None:
            if name not in roles:
                raise ConfigChangeError(404, "no_such_role", f"no role {name!r} in {path}")
            del roles[name]
            return False
        created = name not in roles
        roles[name] = entry
        return created
    items = current if isinstance(current, list) else [] if current is None else None
    if items is None:
        raise ConfigChangeError(422, "config_invalid", f"gateway config {path}: {section} must be a list")
    document[section] = items
    where = next(
        (i for i, item in enumerate(items) if isinstance(item, dict) and item.get("name") == name), None
    )
    if entry is None:
        if where is None:
            raise ConfigChangeError(404, f"no_such_{section[:-1]}", f"no {section[:-1]} {name!r} in {path}")
        del items[where]
        return False
    if where is None:
        items.append(entry)
        return True
    items[where] = entry
    return False


def _dump(document: dict[str, Any]) -> bytes:
    import yaml

    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.encode("utf-8")


def edit_config(
    path: Path,
    *,
    section: str,
    name: str,
    entry: dict[str, Any] | None,
    if_match: str | None,
    require_if_match: bool = False,
    check: Callable[[GatewayConfig], None] | None = None,
    before_commit: Callable[[str, str], None] | None = None,
) -> ConfigChange:
    """Replace (``entry``) or delete (``entry=None``) one entry of ``section`` in the file at ``path``.

    ``entry`` should have been checked with :func:`validate_entry`. ``check`` is given the new
    configuration before anything is written (the running gateway builds it there; whatever it raises
    refuses the change with 422); ``before_commit(before, after)`` runs right before the rename (the
    admin API records its audit event there, so a change that cannot be audited is not made).
    """
    path = path.resolve()
    with _folder_lock(path.parent):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigChangeError(
                503, "config_unreadable", f"cannot read {path}: {exc.strerror or exc}"
            ) from None
        before = digest_of(raw)
        if if_match is None:
            if require_if_match:
                raise ConfigChangeError(
                    428,
                    "precondition_required",
                    "send If-Match with the ETag of the configuration (from any GET of the admin API), "
                    "or If-Match: * to change it whatever its version",
                )
        elif not etag_matches(if_match, before):
            raise ConfigChangeError(
                412,
                "config_changed",
                f"the configuration changed since that ETag was read; its ETag is now {etag(before)}",
                current=before,
            )
        document = _load_document(raw, path)
        created = _change_document(document, section, name, entry, path)
        data = _dump(document)
        after = digest_of(data)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(OSError):
                os.chmod(tmp, path.stat().st_mode & 0o777)
            config = _validate_file(tmp, path)
            config._source = (path, after)
            check_admin_kept(config)
            if check is not None:
                try:
                    check(config)
                except ConfigChangeError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a route that cannot be built: refused, nothing written
                    text = (
                        exc.diagnostics()
                        if isinstance(exc, GarrisonError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    raise ConfigChangeError(
                        422, "config_invalid", text.replace(str(tmp), str(path))
                    ) from None
            if before_commit is not None:
                before_commit(before, after)
            os.replace(tmp, path)
            _fsync_folder(path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    action: Literal["put", "delete"] = "delete" if entry is None else "put"
    return ConfigChange(
        section=section, name=name, action=action, created=created, before=before, after=after, config=config
    )


def _validate_file(tmp: Path, path: Path) -> GatewayConfig:
    try:
        return load_gateway_config(tmp)
    except ConfigError as exc:
        raise ConfigChangeError(422, "config_invalid", exc.message.replace(str(tmp), str(path))) from None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_section(path: Path, section: str) -> tuple[Any, str]:
    """The entries of ``section`` as the file writes them, and the file's digest (the whole file is
    validated first: a file that does not load is a :class:`ConfigError`)."""
    raw = path.read_bytes()
    load_gateway_config(path)
    found = _load_document(raw, path).get(section)
    if found is None:
        found = {} if section == "roles" else []
    return found, digest_of(raw)


def running_config(base: GatewayConfig, loaded: GatewayConfig) -> GatewayConfig:
    """The configuration a running gateway uses: ``loaded``'s live sections, ``base``'s others."""
    values = dict(base)
    for name in LIVE_SECTIONS:
        values[name] = getattr(loaded, name)
    try:
        return GatewayConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"gateway config: {first['msg']} (with the running admin and server settings)"
        ) from None


def restart_sections(base: GatewayConfig, loaded: GatewayConfig) -> list[str]:
    """Sections that differ between the running and the loaded configuration but need a restart."""
    return [
        name
        for name in GatewayConfig.model_fields
        if name not in LIVE_SECTIONS and getattr(base, name) != getattr(loaded, name)
    ]


class LiveConfig:
    """What a gateway worker serves: the configuration it started with, then each valid version of its file.

    :class:`~garrison.gateway.app.Gateway` makes one when its configuration came from a file, and asks
    :meth:`current` for the gateway to serve each request with.
    """

    def __init__(self, root: Gateway, path: Path, digest: str, *, interval: float = 1.0) -> None:
        self.path = path
        """The configuration file."""
        self.digest = digest
        """SHA-256 of the file content in force."""
        self.interval = interval
        """Seconds between two checks of the file."""
        self._root = root
        self._current = root
        self._base: GatewayConfig = root.c.config
        self._checked = time.monotonic()
        self._lock = asyncio.Lock()
        self._refused: str | None = None
        self._retired: list[HttpPool] = []

    @property
    def gateway(self) -> Gateway:
        """The gateway new requests get."""
        return self._current

    async def current(self) -> Gateway:
        """The gateway for the next request, after checking the file when ``interval`` has passed."""
        now = time.monotonic()
        if now - self._checked >= self.interval and not self._lock.locked():
            self._checked = now
            try:
                digest = digest_of(self.path.read_bytes())
            except OSError as exc:  # the running configuration stays; the file may be being replaced
                log.warning("cannot read the gateway config %s: %s", self.path, exc.strerror or exc)
                return self._current
            if digest not in (self.digest, self._refused):
                async with self._lock:
                    await self._reload(digest)
        self._current.c.ready = self._root.c.ready  # /readyz follows the worker's life cycle
        return self._current

    async def _reload(self, seen: str) -> None:
        before = self.digest
        try:
            loaded = await asyncio.to_thread(load_gateway_config, self.path)
            assert loaded.source is not None
            after = loaded.source[1]
            if after == before:
                return
            version = await asyncio.to_thread(self._compile, loaded)
        except Exception as exc:  # noqa: BLE001 - fail closed: the configuration in force stays
            text = exc.diagnostics() if isinstance(exc, GarrisonError) else f"{type(exc).__name__}: {exc}"
            if seen != self._refused:
                self._refused = seen
                log.error("gateway config %s refused; the running configuration stays: %s", self.path, text)
                self._event(
                    "gateway.config.rejected", {"digest": seen, "in_force": before, "error": text[:1000]}
                )
            return
        self._swap(version, after)
        self._event("gateway.config.reloaded", {"before": before, "after": after})
        stale = restart_sections(self._base, loaded)
        if stale:
            log.warning("gateway config %s: changes to %s need a restart", self.path, ", ".join(stale))

    async def change(
        self, *, section: str, name: str, entry: dict[str, Any] | None, if_match: str | None, actor: str
    ) -> ConfigChange:
        """Make one admin change: write the file (see :func:`edit_config`), then serve the new version."""
        async with self._lock:
            built: list[Gateway] = []

            def build(config: GatewayConfig) -> None:
                built.append(self._compile(config))

            def audit(before: str, after: str) -> None:
                self._root.c.audit.record(
                    Event(
                        type="gateway.config.changed",
                        actor=actor,
                        subject=f"{section}/{name}",
                        data={
                            "section": section,
                            "name": name,
                            "action": "delete" if entry is None else "put",
                            "before": before,
                            "after": after,
                        },
                    )
                )

            done = await asyncio.to_thread(
                edit_config,
                self.path,
                section=section,
                name=name,
                entry=entry,
                if_match=if_match,
                require_if_match=True,
                check=build,
                before_commit=audit,
            )
            self._swap(built[0], done.after)
            return done

    def _swap(self, version: Gateway, digest: str) -> None:
        old = self._current
        for name, pool in old.pools.items():
            if version.pools.get(name) is not pool:
                self._retired.append(pool)  # requests in flight may still use it; closed at shutdown
        self._current = version  # one assignment: the next request gets the new configuration
        self.digest = digest
        self._refused = None

    def _compile(self, loaded: GatewayConfig) -> Gateway:
        """Build the gateway for ``loaded``, sharing every stateful part (store, keys, audit, metrics,
        limit counters) with the one in force and reusing what belongs to unchanged routes."""
        from garrison.gateway.app import Gateway

        old = self._current
        config = running_config(self._base, loaded)
        before = {route.name: route for route in old.c.config.routes}

        def same(route: RouteConfig) -> bool:
            return before.get(route.name) == route

        c = old.c.with_config(config)
        version = Gateway(c)
        for route in config.routes:
            if same(route) and route.name in old.pools and route.name in version.pools:
                version.pools[route.name] = old.pools[route.name]
        version.live = self
        return version

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self._root.c.audit.record(Event(type=kind, actor="garrison", subject=str(self.path), data=data))
        except GarrisonError as exc:
            log.warning("could not record %s: %s", kind, exc.message)

    async def close(self) -> None:
        """Close the upstream connections of the configurations this worker served after the first."""
        pools = {id(p): p for p in self._retired}
        pools.update({id(p): p for p in self._current.pools.values()})
        for pool in self._root.pools.values():
            pools.pop(id(pool), None)  # the root gateway closes its own
        for pool in pools.values():
            await pool.close()
