"""Authorization: may this principal do this action on this route and model? Deny by default.

A role grants actions on routes and models (``*``/``?`` globs, case-sensitive). A role also has the
grants of the roles it ``inherits`` (transitively; the configuration rejects cycles) and of nothing
else. A credential's scopes narrow what its roles allow: each scope is an action glob, optionally
``action@model-glob``, and one must match. Admin actions (``admin``, ``admin:*``, ``keys:*``) need
more: the principal must hold the admin role itself, and both the grant and any scope must name the
action literally, so ``actions: ["*"]`` or a ``*`` scope never reaches the admin API.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

from garrison.gateway.auth_config import RoleConfig, RolesConfig
from garrison.gateway.types import Denied, Principal

#: Decisions remembered per (roles, scopes, route, model, action); the cache is emptied when full.
CACHE_SIZE = 50_000


def is_admin_action(action: str) -> bool:
    """Whether ``action`` belongs to the admin API."""
    return action == "admin" or action.startswith(("admin:", "keys:"))


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


@dataclass(frozen=True, slots=True)
class _Grant:
    routes: tuple[re.Pattern[str], ...]
    models: tuple[re.Pattern[str], ...]
    actions: tuple[re.Pattern[str], ...]
    literal_actions: frozenset[str]

    def allows(self, route: str, model: str, action: str, *, admin: bool) -> bool:
        if admin:
            if action not in self.literal_actions:
                return False
        elif not any(p.fullmatch(action) for p in self.actions):
            return False
        return any(p.fullmatch(route) for p in self.routes) and any(p.fullmatch(model) for p in self.models)


class Authorizer:
    """Checks principals against the ``roles:`` configuration."""

    def __init__(self, roles: RolesConfig | Mapping[str, RoleConfig], *, admin_role: str = "admin") -> None:
        table = roles.root if isinstance(roles, RolesConfig) else RolesConfig.model_validate(dict(roles)).root
        self.admin_role = admin_role
        """The role admin actions require."""
        self._grants: dict[str, tuple[_Grant, ...]] = {}
        for name in table:
            grants: list[_Grant] = []
            for member in _closure(name, table):
                for grant in table[member].allow:
                    grants.append(
                        _Grant(
                            tuple(_glob(p) for p in grant.routes),
                            tuple(_glob(p) for p in grant.models),
                            tuple(_glob(p) for p in grant.actions),
                            frozenset(grant.actions),
                        )
                    )
            self._grants[name] = tuple(grants)
        self._cache: dict[tuple[frozenset[str], frozenset[str], str, str, str], str] = {}

    def check(self, principal: Principal | None, *, route: str, model: str, action: str) -> None:
        """Return if allowed; otherwise raise ``Denied(403, reason)`` (``unauthenticated``, ``no_roles``,
        ``admin_role_required``, ``not_permitted``, ``scope_not_permitted``)."""
        if principal is None:
            raise Denied(403, "unauthenticated")
        key = (principal.roles, principal.scopes, route, model, action)
        reason = self._cache.get(key)
        if reason is None:
            reason = self._decide(principal, route, model, action)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = reason
        if reason:
            raise Denied(403, reason)

    def _decide(self, principal: Principal, route: str, model: str, action: str) -> str:
        if not principal.roles:
            return "no_roles"
        admin = is_admin_action(action)
        if admin and self.admin_role not in principal.roles:
            return "admin_role_required"
        if not any(
            grant.allows(route, model, action, admin=admin)
            for role in principal.roles
            for grant in self._grants.get(role, ())
        ):
            return "not_permitted"
        if principal.scopes and not any(
            _scope_allows(s, model, action, admin=admin) for s in principal.scopes
        ):
            return "scope_not_permitted"
        return ""


def _scope_allows(scope: str, model: str, action: str, *, admin: bool) -> bool:
    action_pattern, _, model_pattern = scope.partition("@")
    if admin:
        if action_pattern != action:
            return False
    elif not fnmatch.fnmatchcase(action, action_pattern):
        return False
    return not model_pattern or fnmatch.fnmatchcase(model, model_pattern)


def _closure(name: str, table: Mapping[str, RoleConfig]) -> list[str]:
    seen: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.append(current)
        pending.extend(table[current].inherits)
    return seen
