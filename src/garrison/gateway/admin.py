"""The admin API under ``admin.prefix`` (default ``/admin``), for callers with the admin role.

Keys are managed here as with ``garrison keys``. Roles, routes and limits are shown as the running
configuration and changed one entry at a time (``PUT`` / ``DELETE {prefix}/roles|routes|limits/{name}``)
in gateway.yaml itself, which stays the source of truth: each change is validated as a whole new
file, written atomically and applied between requests (:mod:`~garrison.gateway.config_store`). A
change must send ``If-Match`` with the ETag of the configuration (the SHA-256 of the file, on every
``GET``), so two admins never overwrite each other unseen (412). ``GET {prefix}/openapi.json``
describes every endpoint.

Every call is authorized (action ``admin`` on route ``admin``) before its body is read, and becomes
one audit event like any other request; a configuration change is one more (``gateway.config.changed``,
with the file's digests before and after). Key texts appear only in the response that creates them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from garrison.core.errors import GarrisonError
from garrison.gateway.config_store import ENTRY_MODELS, ConfigChangeError, etag, validate_entry
from garrison.gateway.http import JSON_TYPE, NO_STORE, Receive, Scope, Send, read_body, send_response
from garrison.gateway.keys import KeyRecord, create_key, list_keys, parse_duration, revoke_key, rotate_key
from garrison.gateway.routes import RouteConfig
from garrison.gateway.types import Decision, Denied, Outcome
from garrison.gateway.validate import parse_json_body

if TYPE_CHECKING:
    from garrison.gateway.app import Gateway
    from garrison.gateway.server import Components

_KEY_PATH = re.compile(r"^keys/(?P<id>[A-Za-z0-9]{1,64})/(?P<verb>revoke|rotate)$")
#: One entry of the configuration; its name is checked further by the section's model.
_NAME = r"[A-Za-z0-9_.:-]{1,64}"
_ENTRY_PATH = re.compile(rf"^(?P<section>roles|routes|limits)/(?P<name>{_NAME})$")
_MAX_ADMIN_BODY = 64 * 1024
#: The duration syntax of :func:`garrison.gateway.keys.parse_duration`, as the API documents it.
_DURATION_PATTERN = r"^\s*\d{1,6}\s*[smhdw]\s*$"
#: Longest key lifetime or rotation grace: ``999999w`` parses, but its end date overflows ``datetime``.
_MAX_DURATION = timedelta(days=100 * 366)


class NewKey(BaseModel):
    """Body of ``POST {prefix}/keys``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w .:@-]+$")
    roles: list[str] = Field(min_length=1, max_length=32)
    scopes: list[str] = Field(default_factory=list, max_length=64)
    expires: str | None = Field(
        default=None,
        max_length=16,
        pattern=_DURATION_PATTERN,
        description="Lifetime such as 30d or 12h (at most 100 years).",
    )


class Rotation(BaseModel):
    """Body of ``POST {prefix}/keys/{id}/rotate`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    grace: str | None = Field(
        default=None,
        max_length=16,
        pattern=_DURATION_PATTERN,
        description="Old key keeps working this long (at most 100 years).",
    )


class Revocation(BaseModel):
    """Body of ``POST {prefix}/keys/{id}/revoke`` (optional, and empty: ``{}``)."""

    model_config = ConfigDict(extra="forbid")


def _key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "roles": sorted(record.roles),
        "scopes": sorted(record.scopes),
        "status": record.status(),
        "created": record.created.isoformat(),
        "expires": record.expires.isoformat() if record.expires else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "rotated_from": record.rotated_from,
    }


async def handle_admin(
    c: Components, scope: Scope, receive: Receive, send: Send, ex: Any, gateway: Gateway
) -> None:
    """Serve one admin request (the caller is authenticated; this authorizes and dispatches)."""
    facts = ex.facts
    t = time.perf_counter()
    ex.step = "authz"
    c.authz.check(facts.principal, route="admin", model="*", action="admin")
    facts.action = "admin"
    facts.decisions.append(Decision(step="authz", outcome=Outcome.ALLOW, ms=(time.perf_counter() - t) * 1000))
    ex.step = "admin"

    prefix = c.config.admin.prefix.rstrip("/")
    sub = facts.path[len(prefix) :].strip("/")
    method = facts.method
    actor = facts.principal.id if facts.principal is not None else "anonymous"
    found = _KEY_PATH.match(sub)
    entry = _ENTRY_PATH.match(sub)
    live = gateway.live
    version = etag(live.digest) if live is not None else None
    if method == "GET" and sub in _VIEWS:
        status, payload = 200, _VIEWS[sub](c, prefix)
    elif method in ("PUT", "DELETE") and entry:
        status, payload = await _change(
            c, scope, receive, ex, gateway, actor, entry.group("section"), entry.group("name")
        )
        version = payload["etag"]
    elif method == "POST" and sub == "keys":
        status, payload = await _create(c, scope, receive, ex, actor)
    elif method == "POST" and found:
        status, payload = await _key_action(
            c, scope, receive, ex, actor, found.group("id"), found.group("verb")
        )
    elif sub in _VIEWS or found or entry:
        allowed = "POST" if found else "DELETE, PUT" if entry else "GET, POST" if sub == "keys" else "GET"
        raise Denied(405, "method_not_allowed", headers=(("allow", allowed),))
    else:
        raise Denied(404, "no_route")

    data = json.dumps(payload, separators=(",", ":")).encode()
    ex.status = status
    # a response that carries a new key is audited by its status alone, never its digest or body
    ex.response_bytes = b"" if "key" in payload else data
    headers = [JSON_TYPE, NO_STORE]
    if version is not None:
        headers.append((b"etag", version.encode()))
    gateway._finish(ex, headers)
    await send_response(send, status, data, headers)


async def _create(
    c: Components, scope: Scope, receive: Receive, ex: Any, actor: str
) -> tuple[int, dict[str, Any]]:
    new = _model(NewKey, await _body(receive, scope, c, ex))
    unknown = sorted(set(new.roles) - set(c.config.roles.root))
    if unknown:
        raise Denied(422, "unknown_role", public=f"unknown roles: {', '.join(unknown)}")
    created = create_key(
        c.store,
        name=new.name,
        roles=new.roles,
        scopes=new.scopes,
        expires_in=_duration(new.expires),
        actor=actor,
    )
    return 201, {"key": created.key, "shown_once": True, **_key_json(created.record)}


async def _key_action(
    c: Components, scope: Scope, receive: Receive, ex: Any, actor: str, key_id: str, verb: str
) -> tuple[int, dict[str, Any]]:
    body = await _body(receive, scope, c, ex)
    try:
        if verb == "revoke":
            _model(Revocation, body)
            return 200, _key_json(revoke_key(c.store, key_id, actor=actor, reason="admin api"))
        rotation = _model(Rotation, body or b"{}")
        created = rotate_key(c.store, key_id, actor=actor, grace=_duration(rotation.grace) or timedelta(0))
    except (GarrisonError, LookupError):
        raise Denied(404, "no_such_key") from None
    return 201, {"key": created.key, "shown_once": True, **_key_json(created.record)}


async def _change(
    c: Components,
    scope: Scope,
    receive: Receive,
    ex: Any,
    gateway: Gateway,
    actor: str,
    section: str,
    name: str,
) -> tuple[int, dict[str, Any]]:
    """Replace, create or delete one entry of gateway.yaml and serve the new configuration."""
    body = await _body(receive, scope, c, ex)
    entry: dict[str, Any] | None = None
    try:
        if scope["method"] == "PUT":
            if not body:
                raise ConfigChangeError(
                    422, "admin_body_invalid", f"PUT needs the {section[:-1]} as a JSON body"
                )
            entry, _ = validate_entry(section, name, parse_json_body(body, max_depth=16))
        live = gateway.live
        if live is None:
            raise ConfigChangeError(
                409,
                "config_not_a_file",
                "this gateway's configuration was not read from a file, so it cannot be changed here",
            )
        if_match = next((v for k, v in scope["headers"] if k == b"if-match"), None)
        done = await live.change(
            section=section,
            name=name,
            entry=entry,
            if_match=if_match.decode("latin-1") if if_match is not None else None,
            actor=actor,
        )
    except ConfigChangeError as exc:
        headers = (("etag", etag(exc.current)),) if exc.current is not None else ()
        raise Denied(exc.status, exc.reason, public=exc.message[:2000], headers=headers) from None
    tag = etag(done.after)
    if done.action == "delete":
        return 200, {"deleted": name, "etag": tag}
    config = live.gateway.c.config
    shown: dict[str, Any]
    if section == "roles":
        shown = config.roles.root[name].model_dump(mode="json")
    elif section == "routes":
        shown = _route_json(next(r for r in config.routes if r.name == name))
    else:
        shown = next(r for r in config.limits if r.name == name).model_dump(mode="json")
    return 201 if done.created else 200, {"name": name, section[:-1]: shown, "etag": tag}


def _route_json(r: RouteConfig) -> dict[str, Any]:
    """What the API shows of a route (never its upstream headers, which may hold provider keys)."""
    return {"name": r.name, "path": r.path, "methods": list(r.methods), "kind": r.kind, "action": r.action}


def _show_keys(c: Components, prefix: str) -> dict[str, Any]:
    return {"keys": [_key_json(r) for r in list_keys(c.store)]}


def _show_roles(c: Components, prefix: str) -> dict[str, Any]:
    return {"roles": c.config.roles.model_dump(mode="json")}


def _show_routes(c: Components, prefix: str) -> dict[str, Any]:
    return {"routes": [_route_json(r) for r in c.config.routes]}


def _show_limits(c: Components, prefix: str) -> dict[str, Any]:
    return {
        "backend": c.config.limits_backend.type,
        "on_backend_error": c.config.limits_backend.on_backend_error,
        "limits": [rule.model_dump(mode="json") for rule in c.config.limits],
    }


def _show_openapi(c: Components, prefix: str) -> dict[str, Any]:
    return openapi(prefix)


_VIEWS: dict[str, Callable[[Components, str], dict[str, Any]]] = {
    "keys": _show_keys,
    "roles": _show_roles,
    "routes": _show_routes,
    "limits": _show_limits,
    "openapi.json": _show_openapi,
}


async def _body(receive: Receive, scope: Scope, c: Components, ex: Any) -> bytes:
    ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    body = await read_body(
        receive, scope, limit=_MAX_ADMIN_BODY, timeout=c.config.server.body_timeout_seconds
    )
    if body and not ctype.split(b";")[0].strip().lower() == b"application/json":
        raise Denied(415, "unsupported_media_type")
    ex.request_bytes = body
    return body


def _model(model: type[BaseModel], body: bytes) -> Any:
    parsed = parse_json_body(body or b"{}", max_depth=8)
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"]) or "/"
        raise Denied(422, "admin_body_invalid", public=f"invalid field {where}: {first['type']}") from None


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        duration = parse_duration(text)
    except GarrisonError:
        duration = None
    if duration is None or duration > _MAX_DURATION:
        raise Denied(
            422,
            "admin_body_invalid",
            public="invalid duration; use forms like 30d, 12h, 15m, at most 100 years",
        )
    return duration


#: What each refusal means, as the document describes it.
_REFUSALS = {
    400: "Malformed request: a refused path or header, or a body that is not valid JSON",
    401: "No valid credentials",
    403: "The caller lacks the admin role",
    404: "No key with this id, no role, route or limit with this name, or a name the path cannot hold",
    408: "The body did not arrive in time",
    413: "Body over 64 KiB",
    415: "A body that is not application/json",
    409: "The change would leave the admin role without the admin grant, or the configuration is not a file",
    412: "If-Match does not name the configuration's current ETag (the response's ETag does)",
    422: "The body, or the configuration it makes, does not validate (the message names the field)",
    428: "A change must send If-Match with the configuration's ETag, or *",
    503: "The key store or the configuration file cannot be read",
}
#: Refusals any admin call can get (before its body is read).
_ALWAYS = (400, 401, 403, 503)
#: Refusals of calls that read a body.
_WITH_BODY = (408, 413, 415, 422)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(status: int, description: str, schema: dict[str, Any], *refused: int) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): {"description": description, "content": _json(schema)}}
    for code in sorted({*_ALWAYS, *refused}):
        responses[str(code)] = {"description": _REFUSALS[code], "content": _json(_ref("Error"))}
    responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return responses


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": required or list(properties), "properties": properties}


def openapi(prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API.

    Every status an operation can answer is listed with its body schema; a method an admin path does
    not list gets 405 with an ``Allow`` header, and a path not listed here gets 404.
    """
    string, strings = {"type": "string"}, {"type": "array", "items": {"type": "string"}}
    nullable = {"type": ["string", "null"]}
    key_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"},
    }

    def body(ref: str, required: bool) -> dict[str, Any]:
        return {"required": required, "content": _json(_ref(ref))}

    created = ("Created; the key text is shown in this response only", _ref("CreatedKey"))
    route = _object({"name": string, "path": string, "methods": strings, "kind": string, "action": string})
    views = {
        "showRoles": (
            "roles",
            "Roles from the running configuration",
            _object({"roles": {"type": "object"}}),
        ),
        "showRoutes": (
            "routes",
            "Routes from the running configuration",
            _object({"routes": {"type": "array", "items": route}}),
        ),
        "showLimits": (
            "limits",
            "Limit rules and backend from the running configuration",
            _object(
                {
                    "backend": {"type": "string", "enum": ["memory", "sqlite", "redis"]},
                    "on_backend_error": {"type": "string", "enum": ["closed", "open"]},
                    "limits": {"type": "array", "items": {"type": "object"}},
                }
            ),
        ),
        "openapi": (
            "openapi.json",
            "This document",
            _object({"openapi": string, "info": {"type": "object"}, "paths": {"type": "object"}}),
        ),
    }
    paths: dict[str, Any] = {
        f"{prefix}/keys": {
            "get": {
                "operationId": "listKeys",
                "summary": "List every key (never the key texts)",
                "responses": _responses(
                    200, "OK", _object({"keys": {"type": "array", "items": _ref("Key")}})
                ),
            },
            "post": {
                "operationId": "createKey",
                "summary": "Create a key",
                "requestBody": body("NewKey", True),
                "responses": _responses(201, *created, *_WITH_BODY),
            },
        },
        f"{prefix}/keys/{{id}}/revoke": {
            "post": {
                "operationId": "revokeKey",
                "summary": "Revoke a key now",
                "parameters": [key_id],
                "requestBody": body("Revocation", False),
                "responses": _responses(200, "Revoked", _ref("Key"), 404, *_WITH_BODY),
            },
        },
        f"{prefix}/keys/{{id}}/rotate": {
            "post": {
                "operationId": "rotateKey",
                "summary": "Replace a key with a new one; the old one is revoked after the grace",
                "parameters": [key_id],
                "requestBody": body("Rotation", False),
                "responses": _responses(201, *created, 404, *_WITH_BODY),
            },
        },
    }
    for operation_id, (sub, summary, schema) in views.items():
        paths[f"{prefix}/{sub}"] = {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "responses": _responses(200, "OK", schema),
            }
        }
        if sub != "openapi.json":
            paths[f"{prefix}/{sub}"]["get"]["responses"]["200"]["headers"] = _ETAG
    paths.update(_entry_paths(prefix, body))
    key = _object(
        {
            "id": string,
            "name": string,
            "prefix": string,
            "roles": strings,
            "scopes": strings,
            "status": {"type": "string", "enum": ["active", "expired", "revoked", "revoking"]},
            "created": string,
            "expires": nullable,
            "revoked_at": nullable,
            "rotated_from": nullable,
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Garrison gateway admin API", "version": "1"},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Key": key,
                "CreatedKey": {
                    "allOf": [
                        _ref("Key"),
                        _object({"key": string, "shown_once": {"type": "boolean", "const": True}}),
                    ]
                },
                **_config_schemas(),
                "NewKey": NewKey.model_json_schema(),
                "Rotation": Rotation.model_json_schema(),
                "Revocation": Revocation.model_json_schema(),
                "Error": _object(
                    {"error": _object({"code": {"type": "integer"}, "message": {"type": "string"}})}
                ),
            },
        },
    }


_ETAG = {
    "ETag": {
        "description": "SHA-256 of gateway.yaml: send it back in If-Match to change the configuration",
        "schema": {"type": "string"},
    }
}


def _entry_paths(prefix: str, body: Callable[[str, bool], dict[str, Any]]) -> dict[str, Any]:
    """``PUT`` and ``DELETE {prefix}/roles|routes|limits/{name}``."""
    string = {"type": "string"}
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{_NAME}$"},
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": True,
        "description": "The ETag of the configuration this change was made against, or * for any",
        "schema": {"type": "string", "minLength": 1},
    }
    paths: dict[str, Any] = {}
    for section, model in ENTRY_MODELS.items():
        one = section[:-1]
        title = one.capitalize()
        saved = _object({"name": string, one: {"type": "object"}, "etag": string})
        put = _responses(200, f"{title} replaced", saved, 404, 409, 412, 428, *_WITH_BODY)
        put["200"]["headers"] = _ETAG
        put["201"] = {"description": f"{title} created", "content": _json(saved), "headers": _ETAG}
        deleted = _responses(
            200,
            f"{title} deleted",
            _object({"deleted": string, "etag": string}),
            404,
            409,
            412,
            428,
            *_WITH_BODY,
        )
        deleted["200"]["headers"] = _ETAG
        paths[f"{prefix}/{section}/{{name}}"] = {
            "put": {
                "operationId": f"put{title}",
                "summary": f"Create or replace a {one} in gateway.yaml and apply it",
                "parameters": [name, if_match],
                "requestBody": body(model.__name__, True),
                "responses": dict(sorted(put.items())),
            },
            "delete": {
                "operationId": f"delete{title}",
                "summary": f"Remove a {one} from gateway.yaml and apply it",
                "parameters": [name, if_match],
                "responses": deleted,
            },
        }
    return paths


def _config_schemas() -> dict[str, Any]:
    """The schemas of roles, routes and limits, from the models that validate gateway.yaml."""
    _, top = models_json_schema(
        [(model, "validation") for model in ENTRY_MODELS.values()],
        ref_template="#/components/schemas/{model}",
    )
    return dict(top.get("$defs", {}))
