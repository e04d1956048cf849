"""Authorization: deny by default, globs, inheritance, scopes, and attempts at role escalation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from garrison.gateway.auth_config import RolesConfig
from garrison.gateway.authz import Authorizer, is_admin_action
from garrison.gateway.types import Denied, Principal

ROLES: dict[str, Any] = {
    "user": {
        "allow": [{"routes": ["chat", "embed*"], "models": ["gpt-*", "local/llama"], "actions": ["invoke"]}]
    },
    "reader": {"allow": [{"routes": ["*"], "models": ["*"], "actions": ["read"]}]},
    "power": {"allow": [{"models": ["*"], "actions": ["invoke", "read"]}], "inherits": ["user"]},
    "team-lead": {"inherits": ["power"]},
    "wildcard": {"allow": [{"actions": ["*"]}]},
    "admin": {"allow": [{"routes": ["admin*"], "actions": ["admin", "keys:read", "keys:write"]}]},
    "admin-star": {"allow": [{"actions": ["*"]}]},
    "inherits-admin": {"inherits": ["admin"]},
}


@pytest.fixture
def authz() -> Authorizer:
    return Authorizer(RolesConfig.model_validate(ROLES))


def who(*roles: str, scopes: tuple[str, ...] = ()) -> Principal:
    return Principal(id="key_test", kind="api_key", roles=frozenset(roles), scopes=frozenset(scopes))


def reason_of(authz: Authorizer, principal: Principal | None, route: str, model: str, action: str) -> str:
    try:
        authz.check(principal, route=route, model=model, action=action)
    except Denied as denied:
        return f"{denied.status}:{denied.public}:{denied.reason}".removeprefix("403:forbidden:")
    return "allowed"


@pytest.mark.parametrize(
    ("roles", "scopes", "route", "model", "action", "expected"),
    [
        (("user",), (), "chat", "gpt-4o", "invoke", "allowed"),
        (("user",), (), "embeddings", "local/llama", "invoke", "allowed"),
        (("user",), (), "chat", "claude", "invoke", "not_permitted"),
        (("user",), (), "images", "gpt-4o", "invoke", "not_permitted"),
        (("user",), (), "chat", "gpt-4o", "read", "not_permitted"),
        (("user",), (), "chat", "GPT-4O", "invoke", "not_permitted"),  # globs are case-sensitive
        ((), (), "chat", "gpt-4o", "invoke", "no_roles"),
        (("ghost",), (), "chat", "gpt-4o", "invoke", "not_permitted"),  # unknown role grants nothing
        (("reader",), (), "chat", "gpt-4o", "invoke", "not_permitted"),  # no inheritance unless configured
        (("power",), (), "anything", "claude", "invoke", "allowed"),
        (("team-lead",), (), "chat", "claude", "read", "allowed"),  # inherited transitively
        (("wildcard",), (), "chat", "m", "anything", "allowed"),
        # scopes narrow, never widen
        (("user",), ("invoke",), "chat", "gpt-4o", "invoke", "allowed"),
        (("user",), ("invoke@gpt-4o",), "chat", "gpt-4o", "invoke", "allowed"),
        (("user",), ("invoke@gpt-4o",), "chat", "gpt-4o-mini", "invoke", "scope_not_permitted"),
        (("power",), ("read",), "chat", "gpt-4o", "invoke", "scope_not_permitted"),
        (("user",), ("*",), "chat", "gpt-4o", "read", "not_permitted"),
    ],
)
def test_decisions(
    authz: Authorizer,
    roles: tuple[str, ...],
    scopes: tuple[str, ...],
    route: str,
    model: str,
    action: str,
    expected: str,
) -> None:
    assert reason_of(authz, who(*roles, scopes=scopes), route, model, action) == expected


@pytest.mark.parametrize(
    ("roles", "scopes", "action", "expected"),
    [
        (("admin",), (), "keys:write", "allowed"),
        (("admin",), (), "admin", "allowed"),
        (("admin",), (), "keys:delete", "not_permitted"),  # not named in the grant
        (("admin",), ("keys:read",), "keys:write", "scope_not_permitted"),
        (("admin",), ("keys:*",), "keys:write", "scope_not_permitted"),  # a glob scope never reaches admin
        (("admin",), ("keys:write",), "keys:write", "allowed"),
        # role escalation attempts
        (("user",), (), "keys:write", "admin_role_required"),
        (("user",), ("keys:write", "admin"), "keys:write", "admin_role_required"),
        (("wildcard",), (), "admin", "admin_role_required"),
        (("admin-star",), (), "keys:write", "admin_role_required"),
        (("inherits-admin",), (), "keys:write", "admin_role_required"),  # must hold the role itself
        (("admin", "admin-star"), (), "admin:reload", "not_permitted"),  # "*" does not name it
    ],
)
def test_admin_actions_need_the_admin_role_and_literal_grants(
    authz: Authorizer, roles: tuple[str, ...], scopes: tuple[str, ...], action: str, expected: str
) -> None:
    assert reason_of(authz, who(*roles, scopes=scopes), "admin", "", action) == expected


def test_unauthenticated_is_denied(authz: Authorizer) -> None:
    assert reason_of(authz, None, "chat", "gpt-4o", "invoke") == "unauthenticated"


def test_admin_action_names() -> None:
    assert is_admin_action("admin")
    assert is_admin_action("admin:reload")
    assert is_admin_action("keys:write")
    assert not is_admin_action("invoke")
    assert not is_admin_action("administer")


def test_cached_decisions_stay_correct(authz: Authorizer) -> None:
    for _ in range(3):
        assert reason_of(authz, who("user"), "chat", "gpt-4o", "invoke") == "allowed"
        assert reason_of(authz, who("user"), "chat", "claude", "invoke") == "not_permitted"


def test_a_custom_admin_role() -> None:
    authz = Authorizer(
        RolesConfig.model_validate({"ops": {"allow": [{"actions": ["keys:write"]}]}, "admin": {}}),
        admin_role="ops",
    )
    assert reason_of(authz, who("ops"), "admin", "", "keys:write") == "allowed"
    assert reason_of(authz, who("admin"), "admin", "", "keys:write") == "admin_role_required"


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ({"a": {"inherits": ["a"]}}, "cycle: a -> a"),
        ({"a": {"inherits": ["b"]}, "b": {"inherits": ["c"]}, "c": {"inherits": ["a"]}}, "cycle"),
        ({"a": {"inherits": ["nobody"]}}, "unknown roles"),
        ({"bad name": {}}, "role name"),
        ({"a": {"allow": [{"actions": []}]}}, "at least 1"),
        ({"a": {"allow": [{"actions": ["x"], "verbs": ["y"]}]}}, "Extra inputs"),
    ],
)
def test_bad_role_configuration(roles: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolesConfig.model_validate(roles)


def test_plain_mapping_is_validated_too() -> None:
    with pytest.raises(ValidationError, match="cycle"):
        Authorizer(
            {"a": RolesConfig.model_validate({"a": {}}).root["a"].model_copy(update={"inherits": ["a"]})}
        )
