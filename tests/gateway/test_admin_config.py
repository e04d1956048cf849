"""Roles, routes and limits changed at run time through the admin API, on the real ASGI app.

Each test writes a gateway.yaml, builds the app from it as ``garrison gateway serve`` does, starts
it, and drives it with raw ASGI calls; an upstream stub answers the routes. A second app built
from the same file plays a second worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.gateway.harness import UpstreamStub, base_config, chat, make_keys

from garrison.gateway.app import Gateway
from garrison.gateway.config import load_gateway_config
from garrison.gateway.config_store import digest_of, etag
from garrison.gateway.server import build_app
from garrison.store import Store

Reply = tuple[int, dict[str, str], Any]


@pytest.fixture(scope="module")
def stub() -> Iterator[UpstreamStub]:
    server = UpstreamStub().start()
    yield server
    server.stop()


@pytest.fixture
def setup(stub: UpstreamStub, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = base_config(stub.port, tmp_path)
    config["routes"] = config["routes"][:2]  # chat and iris
    path = tmp_path / "gateway.yaml"
    path.write_text("# written by the test\n" + yaml.safe_dump(config, sort_keys=False))
    keys = make_keys(Path(config["db"]), {"admin": ["admin"], "user": ["user"]})
    return path, keys


async def call(
    app: Gateway,
    method: str,
    path: str,
    *,
    key: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request through the ASGI app; the JSON body of the answer is decoded."""
    data = json.dumps(body).encode() if body is not None else b""
    sent: dict[str, str] = {"content-type": "application/json", "content-length": str(len(data))}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    sent.update(headers or {})
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("gateway", 80),
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await app(scope, receive, send)
    head = {k.decode().lower(): v.decode() for k, v in out[0]["headers"]}
    raw = b"".join(m.get("body", b"") for m in out[1:])
    return out[0]["status"], head, json.loads(raw) if raw else None


@contextlib.asynccontextmanager
async def started(path: Path, *, interval: float = 1.0) -> AsyncIterator[Gateway]:
    app = build_app(load_gateway_config(path))
    assert app.live is not None
    app.live.interval = interval
    await app.c.start()
    try:
        yield app
    finally:
        await app.c.stop()
        await app.live.close()
        for pool in app.pools.values():
            await pool.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def current_etag(app: Gateway, admin: str) -> str:
    status, head, _ = await call(app, "GET", "/admin/roles", key=admin)
    assert status == 200
    return head["etag"]


async def put(app: Gateway, admin: str, section: str, name: str, body: Any, tag: str | None = None) -> Reply:
    tag = tag or await current_etag(app, admin)
    return await call(app, "PUT", f"/admin/{section}/{name}", key=admin, body=body, headers={"if-match": tag})


def test_a_role_change_authorizes_the_next_request(setup: tuple[Path, dict[str, str]]) -> None:
    path, keys = setup

    async def scenario() -> None:
        async with started(path) as app:
            assert (await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat()))[0] == 200
            assert (await call(app, "POST", "/predict", key=keys["user"], body={"inputs": [[1, 2, 3, 4]]}))[
                0
            ] == 403
            status, head, body = await put(
                app, keys["admin"], "roles", "user", {"allow": [{"routes": ["iris"], "actions": ["invoke"]}]}
            )
            assert status == 200, body
            assert head["etag"] == body["etag"] == etag(digest_of(path.read_bytes()))
            assert body["role"]["allow"][0]["routes"] == ["iris"]
            assert (await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat()))[0] == 403
            assert (await call(app, "POST", "/predict", key=keys["user"], body={"inputs": [[1, 2, 3, 4]]}))[
                0
            ] == 200
            status, _, body = await put(app, keys["admin"], "roles", "auditor", {"inherits": ["user"]})
            assert status == 201, body
            status, _, body = await call(app, "GET", "/admin/roles", key=keys["admin"])
            assert set(body["roles"]) == {"user", "scorer", "admin", "auditor"}

    run(scenario)


def test_a_new_route_is_reached_and_a_deleted_one_is_gone(
    setup: tuple[Path, dict[str, str]], stub: UpstreamStub
) -> None:
    path, keys = setup
    route = {
        "path": "/score",
        "kind": "json",
        "model": "iris",
        "upstream": stub.url,
        "upstream_path": "/predict",
    }

    async def scenario() -> None:
        async with started(path) as app:
            assert (await call(app, "POST", "/score", key=keys["user"], body={"inputs": [[1]]}))[0] == 404
            status, _, body = await put(app, keys["admin"], "routes", "score", route)
            assert status == 201, body
            assert body["route"] == {
                "name": "score",
                "path": "/score",
                "methods": ["POST"],
                "kind": "json",
                "action": "invoke",
            }
            grant = {"allow": [{"routes": ["chat", "score"], "models": ["*"], "actions": ["invoke"]}]}
            assert (await put(app, keys["admin"], "roles", "user", grant))[0] == 200
            status, _, body = await call(app, "POST", "/score", key=keys["user"], body={"inputs": [[1]]})
            assert status == 200, body
            assert body == {"predictions": [[0.1, 0.7, 0.2]]}
            tag = await current_etag(app, keys["admin"])
            status, _, body = await call(
                app, "DELETE", "/admin/routes/score", key=keys["admin"], headers={"if-match": tag}
            )
            assert status == 200, body
            assert body["deleted"] == "score"
            assert (await call(app, "POST", "/score", key=keys["user"], body={"inputs": [[1]]}))[0] == 404
            status, _, body = await call(
                app, "DELETE", "/admin/routes/score", key=keys["admin"], headers={"if-match": "*"}
            )
            assert status == 404, body

    run(scenario)


def test_a_tightened_limit_throttles_and_an_unrelated_change_keeps_its_counters(
    setup: tuple[Path, dict[str, str]],
) -> None:
    path, keys = setup
    limit = {"per": "key", "match": {"routes": ["chat"]}, "requests": {"limit": 2, "window": "1h"}}

    async def scenario() -> None:
        async with started(path) as app:
            assert (await put(app, keys["admin"], "limits", "tight", limit))[0] == 201
            for _ in range(2):
                assert (await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat()))[
                    0
                ] == 200
            status, head, _ = await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat())
            assert status == 429
            assert "retry-after" in head
            # another role and another limit change: the counter of "tight" is not reset
            assert (await put(app, keys["admin"], "roles", "reader", {"allow": []}))[0] == 201
            other = {"per": "global", "match": {"routes": ["iris"]}, "concurrent": 5}
            assert (await put(app, keys["admin"], "limits", "other", other))[0] == 201
            assert (await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat()))[0] == 429
            status, _, body = await call(app, "GET", "/admin/limits", key=keys["admin"])
            assert [rule["name"] for rule in body["limits"]] == ["tight", "other"]

    run(scenario)


def test_a_stale_etag_gets_412_and_a_missing_one_428(setup: tuple[Path, dict[str, str]]) -> None:
    path, keys = setup
    admin = keys["admin"]

    async def scenario() -> None:
        async with started(path) as app:
            seen = await current_etag(app, admin)
            assert (await put(app, admin, "roles", "first", {"allow": []}, tag=seen))[0] == 201
            before = path.read_bytes()
            status, head, body = await put(app, admin, "roles", "second", {"allow": []}, tag=seen)
            assert status == 412, body
            assert head["etag"] == etag(digest_of(before)) != seen
            status, _, body = await call(app, "PUT", "/admin/roles/second", key=admin, body={"allow": []})
            assert status == 428, body
            assert "If-Match" in body["error"]["message"]
            assert path.read_bytes() == before
            assert (await put(app, admin, "roles", "second", {"allow": []}, tag="*"))[0] == 201

    run(scenario)


@pytest.mark.parametrize(
    ("section", "name", "body", "named"),
    [
        ("roles", "user", {"allow": [{"actions": []}]}, "allow.0.actions"),
        ("roles", "user", {"allow": [], "colour": "red"}, "colour"),
        ("roles", "user", {"inherits": ["nobody"]}, "inherits unknown roles"),
        ("roles", "-x", {"allow": []}, "invalid role name"),
        ("routes", "r1", {"path": "/x", "kind": "json"}, "needs an upstream"),
        ("routes", "r1", {"name": "r2", "path": "/x", "upstream": "http://127.0.0.1:9"}, "name"),
        ("routes", "r1", {"path": "/admin/x", "upstream": "http://127.0.0.1:9"}, "under the admin prefix"),
        (
            "routes",
            "r1",
            {"path": "/v1/chat/completions", "upstream": "http://127.0.0.1:9"},
            "share the path",
        ),
        ("routes", "r1", {"path": "/x", "upstream": "https://example.test"}, "http://host"),
        ("limits", "l1", {"per": "key"}, "sets none of"),
        ("limits", "l1", {"requests": {"limit": 0, "window": "1s"}}, "requests.limit"),
        ("limits", "l1", [1, 2], "JSON object"),
    ],
)
def test_an_invalid_change_gets_422_naming_the_problem_and_changes_nothing(
    setup: tuple[Path, dict[str, str]], section: str, name: str, body: Any, named: str
) -> None:
    path, keys = setup

    async def scenario() -> None:
        async with started(path) as app:
            before = path.read_bytes()
            status, _, answer = await put(app, keys["admin"], section, name, body)
            assert status == 422, answer
            assert named in answer["error"]["message"]
            assert path.read_bytes() == before
            assert (await call(app, "POST", "/v1/chat/completions", key=keys["user"], body=chat()))[0] == 200

    run(scenario)


def test_the_admin_role_cannot_be_deleted_or_stripped(setup: tuple[Path, dict[str, str]]) -> None:
    path, keys = setup
    admin = keys["admin"]

    async def scenario() -> None:
        async with started(path) as app:
            before = path.read_bytes()
            tag = await current_etag(app, admin)
            status, _, body = await call(
                app, "DELETE", "/admin/roles/admin", key=admin, headers={"if-match": tag}
            )
            assert status == 409, body
            assert "admin grant" in body["error"]["message"]
            status, _, body = await put(app, admin, "roles", "admin", {"allow": [{"actions": ["invoke"]}]})
            assert status == 409, body
            assert path.read_bytes() == before
            # keeping the grant through inheritance is fine
            assert (await put(app, admin, "roles", "root", {"allow": [{"actions": ["admin"]}]}))[0] == 201
            assert (await put(app, admin, "roles", "admin", {"inherits": ["root"]}))[0] == 200
            assert (await call(app, "GET", "/admin/keys", key=admin))[0] == 200

    run(scenario)


def test_the_file_after_changes_revalidates_and_keeps_the_rest(setup: tuple[Path, dict[str, str]]) -> None:
    path, keys = setup
    original = yaml.safe_load(path.read_text())

    async def scenario() -> None:
        async with started(path) as app:
            assert (await put(app, keys["admin"], "roles", "reader", {"allow": []}))[0] == 201
            limit = {"requests": {"limit": 5, "window": "1m"}}
            assert (await put(app, keys["admin"], "limits", "five", limit))[0] == 201

    run(scenario)
    reloaded = load_gateway_config(path)
    assert "reader" in reloaded.roles.root
    assert [rule.name for rule in reloaded.limits] == ["five"]
    written = yaml.safe_load(path.read_text())
    assert list(written) == list(original)  # same sections, same order
    for section in ("db", "audit", "auth", "routes", "limits_backend"):
        assert written[section] == original[section]
    assert written["roles"] == {**original["roles"], "reader": {"allow": []}}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_second_worker_picks_the_change_up_and_refuses_a_broken_file(
    setup: tuple[Path, dict[str, str]],
) -> None:
    path, keys = setup
    user = keys["user"]

    async def scenario() -> None:
        async with started(path) as first, started(path, interval=0.0) as second:
            assert (await call(second, "POST", "/v1/chat/completions", key=user, body=chat()))[0] == 200
            assert (await put(first, keys["admin"], "roles", "user", {"allow": []}))[0] == 200
            assert (await call(second, "POST", "/v1/chat/completions", key=user, body=chat()))[0] == 403
            assert second.live is not None
            assert first.live is not None
            assert second.live.digest == first.live.digest == digest_of(path.read_bytes())
            # a hand edit that does not validate: refused, the configuration in force stays
            good = path.read_bytes()
            path.write_text(good.decode().replace("roles:", "roles: 7\nroles_typo:", 1))
            assert (await call(second, "POST", "/v1/chat/completions", key=user, body=chat()))[0] == 403
            assert second.live.digest == digest_of(good)
            status, _, body = await call(second, "GET", "/admin/roles", key=keys["admin"])
            assert status == 200
            assert body["roles"]["user"] == {"allow": [], "inherits": []}
            # a valid hand edit is taken
            document = yaml.safe_load(good)
            document["roles"]["user"] = {"allow": [{"routes": ["chat"], "actions": ["invoke"]}]}
            path.write_text(yaml.safe_dump(document))
            assert (await call(second, "POST", "/v1/chat/completions", key=user, body=chat()))[0] == 200

    run(scenario)
    with contextlib.closing(Store.open(f"sqlite:///{path.parent / 'gw.db'}")) as store:
        events = [r.event for r in store.event_records() if r.event.type.startswith("gateway.config.")]
    changed = [e for e in events if e.type == "gateway.config.changed"]
    assert len(changed) == 1
    assert changed[0].actor.startswith("key_")
    assert changed[0].subject == "roles/user"
    assert changed[0].data["action"] == "put"
    assert len(changed[0].data["before"]) == len(changed[0].data["after"]) == 64
    types = {e.type for e in events}
    assert {"gateway.config.reloaded", "gateway.config.rejected"} <= types


WRITES = [
    ("PUT", "/admin/roles/x", {"allow": []}),
    ("DELETE", "/admin/roles/user", None),
    ("PUT", "/admin/routes/x", {"path": "/x", "upstream": "http://127.0.0.1:9"}),
    ("DELETE", "/admin/routes/chat", None),
    ("PUT", "/admin/limits/x", {"concurrent": 1}),
    ("DELETE", "/admin/limits/x", None),
]


def test_every_write_endpoint_refuses_a_caller_without_the_admin_role(
    setup: tuple[Path, dict[str, str]],
) -> None:
    path, keys = setup

    async def scenario() -> None:
        async with started(path) as app:
            before = path.read_bytes()
            for method, target, body in WRITES:
                status, _, _ = await call(
                    app, method, target, key=keys["user"], body=body, headers={"if-match": "*"}
                )
                assert status == 403, (method, target)
                status, _, _ = await call(app, method, target, body=body, headers={"if-match": "*"})
                assert status == 401, (method, target)
            assert path.read_bytes() == before

    run(scenario)


def test_the_document_describes_the_new_endpoints(setup: tuple[Path, dict[str, str]]) -> None:
    path, keys = setup

    async def scenario() -> None:
        async with started(path) as app:
            status, _, document = await call(app, "GET", "/admin/openapi.json", key=keys["admin"])
            assert status == 200
            for section, model in (
                ("roles", "RoleConfig"),
                ("routes", "RouteConfig"),
                ("limits", "LimitRule"),
            ):
                item = document["paths"][f"/admin/{section}/{{name}}"]
                assert set(item) == {"put", "delete"}
                schema = item["put"]["requestBody"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{model}"}
                assert model in document["components"]["schemas"]
                assert {"412", "422", "428"} <= set(item["put"]["responses"])
            status, head, _ = await call(app, "PATCH", "/admin/roles/user", key=keys["admin"])
            assert status == 405
            assert head["allow"] == "DELETE, PUT"

    run(scenario)


def test_a_gateway_built_in_code_cannot_be_changed(stub: UpstreamStub, tmp_path: Path) -> None:
    config = base_config(stub.port, tmp_path)
    keys = make_keys(Path(config["db"]), {"admin": ["admin"]})
    from garrison.gateway.config import GatewayConfig

    async def scenario() -> None:
        app = build_app(GatewayConfig.model_validate(config))
        assert app.live is None
        await app.c.start()
        try:
            status, _, body = await call(
                app, "PUT", "/admin/roles/x", key=keys["admin"], body={"allow": []}, headers={"if-match": "*"}
            )
            assert status == 409, body
            assert "not read from a file" in body["error"]["message"]
            assert "etag" not in (await call(app, "GET", "/admin/roles", key=keys["admin"]))[1]
        finally:
            await app.c.stop()

    run(scenario)


@functools.cache
def _admin_schema() -> Any:
    """The admin document as schemathesis reads it (loading it takes seconds: once per module)."""
    import schemathesis

    from garrison.gateway.admin import openapi

    return schemathesis.openapi.from_dict(openapi("/admin"), config=schemathesis.Config())


def _fuzzed_cases(operation_id: str, mode: Any, count: int) -> list[Any]:
    """``count`` schemathesis cases for one operation of the admin document (derandomized)."""
    from hypothesis import HealthCheck, given, settings

    schema = _admin_schema()
    operation = next(
        result.ok()
        for result in schema.get_all_operations()
        if schema.get_operation_id(result.ok()) == operation_id
    )
    found: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def collect(case: Any) -> None:
        found.append(case)

    collect()
    return found


@pytest.mark.slow  # loading the admin document into schemathesis takes seconds
@pytest.mark.parametrize("operation_id", ["putRole", "putRoute", "putLimit"])
def test_fuzzed_changes_with_a_valid_etag_never_fail_the_server_nor_break_the_file(
    setup: tuple[Path, dict[str, str]], operation_id: str
) -> None:
    # test_admin_fuzz.py fuzzes every operation with made-up ETags (412); these reach the whole-file
    # validation and the rebuild of the running configuration
    from schemathesis import GenerationMode

    from garrison.gateway.admin import openapi

    path, keys = setup
    documented = {
        int(code)
        for item in openapi("/admin")["paths"].values()
        for op in item.values()
        if op["operationId"] == operation_id
        for code in op["responses"]
    }
    cases = [case for mode in GenerationMode for case in _fuzzed_cases(operation_id, mode, 5)]

    async def scenario() -> None:
        async with started(path) as app:
            for case in cases:
                name = (case.path_parameters or {}).get("name", "x")
                target = "/admin/" + case.path.split("/")[2] + "/" + str(name)
                body = case.body if isinstance(case.body, dict | list | str | int | float) else None
                status, _, answer = await call(
                    app, case.method.upper(), target, key=keys["admin"], body=body, headers={"if-match": "*"}
                )
                assert status in documented, (target, body, status, answer)
                assert status < 500, (target, body, answer)
                load_gateway_config(path)  # the file on disk always validates
            assert (await call(app, "GET", "/admin/keys", key=keys["admin"]))[0] == 200

    run(scenario)


def test_the_cli_changes_the_same_file_with_the_same_checks(
    setup: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from garrison.cli.main import main

    path, _ = setup
    config = str(path)
    assert main(["gateway", "roles", "list", "--config", config, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["etag"] == digest_of(path.read_bytes())
    assert set(listed["roles"]) == {"user", "scorer", "admin"}

    limit = "{requests: {limit: 5, window: 1m}}"
    assert main(["gateway", "limits", "set", "five", "--body", limit, "--config", config]) == 0
    assert capsys.readouterr().out.strip() == digest_of(path.read_bytes())
    assert [rule.name for rule in load_gateway_config(path).limits] == ["five"]

    before = path.read_bytes()
    refused = [
        ["gateway", "limits", "set", "bad", "--body", "{requests: {limit: 0, window: 1m}}"],
        ["gateway", "roles", "delete", "admin"],
        ["gateway", "routes", "delete", "nope"],
        ["gateway", "roles", "set", "x", "--body", "{}", "--if-match", listed["etag"]],  # stale now
    ]
    for argv in refused:
        assert main([*argv, "--config", config]) == 2, argv
    errors = capsys.readouterr().err
    assert "requests.limit" in errors
    assert "admin grant" in errors
    assert "no route 'nope'" in errors
    assert "changed since that ETag" in errors
    assert path.read_bytes() == before

    assert main(["gateway", "routes", "delete", "iris", "--config", config, "--actor", "ops"]) == 0
    capsys.readouterr()
    assert main(["gateway", "routes", "list", "--config", config, "--format", "json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["routes"]] == ["chat"]
    with contextlib.closing(Store.open(f"sqlite:///{path.parent / 'gw.db'}")) as store:
        changed = [r.event for r in store.event_records() if r.event.type == "gateway.config.changed"]
    assert [(e.actor, e.subject, e.data["action"]) for e in changed][-1] == ("ops", "routes/iris", "delete")
    assert len(changed) == 2
