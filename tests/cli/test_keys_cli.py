"""``garrison keys create|list|revoke|rotate`` against a real SQLite store."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.cli import keys as keys_cli
from garrison.core.errors import GarrisonError
from garrison.gateway.keys import KeyCache, hash_key
from garrison.gateway.types import Denied
from garrison.store import Store
from tests.cli.conftest import Result

KEY_RE = re.compile(r"gar_[0-9a-f]{12}_[0-9A-Za-z]{49}")


@pytest.fixture
def keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run ``garrison keys ...`` in-process as ``garrison.cli.main`` does, with a private store."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GARRISON_"):
            monkeypatch.delenv(name)
    db = str(tmp_path / "store.db")

    def run(*args: str) -> Result:
        code = 0
        try:
            keys_cli.app(args=[*args, "--db", db], prog_name="garrison keys")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except GarrisonError as exc:
            sys.stderr.write(f"garrison: error: {exc.diagnostics()}\n")
            code = exc.exit_code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def open_store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'store.db'}")


def test_create_prints_the_key_once_and_list_never_shows_it(
    keys: Callable[..., Result], tmp_path: Path
) -> None:
    created = keys(
        "create",
        "--name",
        "ci bot",
        "--role",
        "user",
        "--role",
        "reader",
        "--scope",
        "invoke",
        "--expires",
        "30d",
        "--actor",
        "alice",
    )
    assert created.code == 0, created.err
    key = created.out.strip()
    assert KEY_RE.fullmatch(key)
    assert "will not be shown again" in created.err
    assert key not in created.err
    listed = keys("list", "--format", "json")
    assert listed.code == 0
    [row] = json.loads(listed.out)
    assert row["name"] == "ci bot"
    assert row["roles"] == ["reader", "user"]
    assert row["scopes"] == ["invoke"]
    assert row["status"] == "active"
    assert row["expires_at"] is not None
    assert key.startswith(row["prefix"])
    table = keys("list")
    for output in (listed.out, table.out + table.err):
        assert key not in output
        assert key.split("_")[2][:12] not in output
        assert hash_key(key) not in output
    assert row["id"] in table.out
    with open_store(tmp_path) as store:
        [event] = store.event_records()
        assert (event.event.type, event.event.actor) == ("gateway.key.created", "alice")
        assert KeyCache(store, refresh_seconds=0).authenticate(key).name == "ci bot"


def test_json_create_includes_the_key_once(keys: Callable[..., Result]) -> None:
    created = keys("create", "--name", "n", "--role", "user", "--format", "json")
    body = json.loads(created.out)
    assert KEY_RE.fullmatch(body["key"])
    assert "hash" not in body


def test_revoke_then_the_key_is_refused(keys: Callable[..., Result], tmp_path: Path) -> None:
    key = keys("create", "--name", "n", "--role", "user").out.strip()
    key_id = key.split("_")[1]
    revoked = keys("revoke", key_id, "--reason", "leaked")
    assert revoked.code == 0
    assert "revoked" in revoked.err
    assert json.loads(keys("list", "--format", "json").out)[0]["status"] == "revoked"
    with open_store(tmp_path) as store, pytest.raises(Denied) as caught:
        KeyCache(store, refresh_seconds=0).authenticate(key)
    assert caught.value.reason == "revoked_key"
    unknown = keys("revoke", "ffffffffffff")
    assert unknown.code == 2
    assert "no API key 'ffffffffffff'" in unknown.err


def test_rotate_with_and_without_grace(keys: Callable[..., Result], tmp_path: Path) -> None:
    old = keys("create", "--name", "svc", "--role", "user", "--scope", "invoke").out.strip()
    old_id = old.split("_")[1]
    rotated = keys("rotate", old_id, "--grace", "1h")
    assert rotated.code == 0, rotated.err
    new = rotated.out.strip()
    assert KEY_RE.fullmatch(new)
    assert new != old
    rows = {r["id"]: r for r in json.loads(keys("list", "--format", "json").out)}
    new_id = new.split("_")[1]
    assert rows[old_id]["status"] == "revoking"
    assert rows[new_id]["rotated_from"] == old_id
    assert rows[new_id]["roles"] == ["user"]
    assert rows[new_id]["scopes"] == ["invoke"]
    with open_store(tmp_path) as store:
        cache = KeyCache(store, refresh_seconds=0)
        assert cache.authenticate(old).name == "svc"
        assert cache.authenticate(new).name == "svc"
    again = keys("rotate", new_id)
    assert again.code == 0
    assert json.loads(keys("list", "--format", "json").out)[1]["status"] == "revoked"


@pytest.mark.parametrize(
    "args",
    [
        ("create", "--name", "n", "--role", "user", "--expires", "forever"),
        ("create", "--name", "n", "--role", "bad role"),
        ("list", "--format", "sarif"),
        ("rotate", "000000000000"),
    ],
)
def test_usage_errors_exit_2(keys: Callable[..., Result], args: tuple[str, ...]) -> None:
    result = keys(*args)
    assert result.code == 2
    assert "error" in result.err.lower()


def test_create_requires_a_role(keys: Callable[..., Result]) -> None:
    result = keys("create", "--name", "n")
    assert result.code == 2
    assert "--role" in result.err
