"""The gateway end to end, as a user runs it: streaming, token budgets settled from usage, output
controls, the admin API, metrics, health, upstream credentials from the environment, and what
reaches the upstream (and what must not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.harness import (
    Gateway,
    UpstreamStub,
    base_config,
    chat,
    http,
    raw_request,
    running,
    wait_for_events,
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamStub]:
    stub = UpstreamStub().start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def gw(upstream: UpstreamStub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("e2e")
    config = base_config(upstream.port, tmp)
    config["routes"][0]["upstream_headers"] = {"Authorization": "Bearer ${GARRISON_TEST_PROVIDER_KEY}"}
    config["routes"][0]["max_tokens_default"] = 100
    config["limits"] = [
        {
            "name": "tokens",
            "per": "key",
            "match": {"routes": ["chat"]},
            "tokens": {"limit": 1000, "window": "1h"},
        },
    ]
    config["routes"][1]["output"] = {"scorer": {"mode": "label"}, "*": {"mode": "round", "decimals": 1}}
    keys = {"user": ["user"], "scorer": ["scorer"], "admin": ["admin"], "both": ["scorer", "user"]}
    with running(config, tmp, keys, env={"GARRISON_TEST_PROVIDER_KEY": "sk-provider-secret"}) as gateway:
        yield gateway


CHAT = "/v1/chat/completions"


def test_upstream_gets_the_provider_key_and_never_the_callers(gw: Gateway, upstream: UpstreamStub) -> None:
    before = len(upstream.seen)
    status, _, body = http(gw.port, "POST", CHAT, body=chat("ping"), key=gw.keys["user"])
    assert status == 200, body
    head, sent = upstream.seen[before]
    assert b"authorization: Bearer sk-provider-secret" in head
    assert gw.keys["user"].encode() not in head
    assert json.loads(sent)["messages"][0]["content"] == "ping"


def test_token_budget_reserves_the_maximum_and_settles_the_usage(gw: Gateway) -> None:
    # each request reserves max_tokens (+ a prompt estimate) and is charged the 10 tokens used;
    # without settling, 1000 tokens would run out after fewer than ten 100-token reservations
    statuses = [
        http(gw.port, "POST", CHAT, body=chat(max_tokens=90), key=gw.keys["both"])[0] for _ in range(20)
    ]
    assert statuses == [200] * 20
    _, headers, _ = http(gw.port, "POST", CHAT, body=chat(max_tokens=90), key=gw.keys["both"])
    remaining = int(headers["ratelimit"].split("r=")[1].split(";")[0])
    assert 1000 - 21 * 10 - 120 <= remaining <= 1000 - 21 * 10


def test_a_request_asking_for_more_than_the_budget_is_refused(gw: Gateway) -> None:
    status, headers, _ = http(gw.port, "POST", CHAT, body=chat(max_tokens=5000), key=gw.keys["user"])
    assert status == 429
    assert int(headers["retry-after"]) >= 1


def test_streaming_passes_sse_through_and_settles_from_the_final_usage(gw: Gateway) -> None:
    status, headers, body = http(gw.port, "POST", CHAT, body=chat(stream=True), key=gw.keys["user"])
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    text = _dechunk(body).decode()
    assert '"content": "hello"' in text
    assert text.rstrip().endswith("data: [DONE]")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


@pytest.mark.parametrize(
    ("key", "expected"),
    [("scorer", [1]), ("both", [1])],
)
def test_output_controls_return_a_label_for_the_scorer_role(gw: Gateway, key: str, expected: Any) -> None:
    status, _, body = http(gw.port, "POST", "/predict", body={"inputs": [[1, 2, 3, 4]]}, key=gw.keys[key])
    assert status == 200, body
    predictions = json.loads(body)["predictions"]
    assert predictions == expected or predictions == [expected]


def test_admin_api_creates_uses_rotates_and_revokes_a_key(gw: Gateway) -> None:
    admin = gw.keys["admin"]
    status, _, body = http(gw.port, "POST", "/admin/keys", body={"name": "svc", "roles": ["user"]}, key=admin)
    assert status == 201, body
    created = json.loads(body)
    assert created["key"].startswith("gar_")
    assert created["shown_once"] is True
    assert http(gw.port, "POST", CHAT, body=chat(), key=created["key"])[0] == 200

    status, _, body = http(gw.port, "GET", "/admin/keys", key=admin)
    listed = {k["id"]: k for k in json.loads(body)["keys"]}
    assert listed[created["id"]]["status"] == "active"
    assert created["key"] not in body.decode()

    status, _, body = http(gw.port, "POST", f"/admin/keys/{created['id']}/rotate", body={}, key=admin)
    assert status == 201, body
    successor = json.loads(body)
    assert successor["rotated_from"] == created["id"]
    assert http(gw.port, "POST", CHAT, body=chat(), key=created["key"])[0] == 401
    assert http(gw.port, "POST", CHAT, body=chat(), key=successor["key"])[0] == 200

    status, _, body = http(gw.port, "POST", f"/admin/keys/{successor['id']}/revoke", key=admin)
    assert status == 200
    assert json.loads(body)["status"] == "revoked"
    assert http(gw.port, "POST", CHAT, body=chat(), key=successor["key"])[0] == 401
    assert http(gw.port, "POST", "/admin/keys/doesnotexist/revoke", key=admin)[0] == 404


def test_admin_api_shows_routes_roles_limits_and_its_openapi_document(gw: Gateway) -> None:
    admin = gw.keys["admin"]
    routes = json.loads(http(gw.port, "GET", "/admin/routes", key=admin)[2])["routes"]
    assert {r["name"] for r in routes} == {"chat", "iris", "slow"}
    assert "user" in json.loads(http(gw.port, "GET", "/admin/roles", key=admin)[2])["roles"]
    assert json.loads(http(gw.port, "GET", "/admin/limits", key=admin)[2])["limits"][0]["name"] == "tokens"
    document = json.loads(http(gw.port, "GET", "/admin/openapi.json", key=admin)[2])
    assert document["openapi"].startswith("3.")
    assert "/admin/keys/{id}/rotate" in document["paths"]


def test_health_readiness_and_metrics_need_no_credentials(gw: Gateway) -> None:
    assert raw_request(gw.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")[0] == 200
    assert raw_request(gw.port, b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")[0] == 200
    http(gw.port, "POST", CHAT, body=chat(), key=gw.keys["user"])
    status, _, body = raw_request(gw.port, b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert status == 200
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["garrison_gateway_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("chat", "200")] >= 1


def test_every_request_has_one_audit_event_with_digests_not_bodies(gw: Gateway) -> None:
    before = len(gw.events())
    http(gw.port, "POST", CHAT, body=chat("my secret plan"), key=gw.keys["user"])
    events = wait_for_events(gw, before + 1)
    data = dict(events[-1].data)
    assert data["status"] == 200
    assert "my secret plan" not in json.dumps(data)
    assert len(data["request"]["sha256"]) == 64
    steps = [d["step"] for d in data["decisions"]]
    assert steps == ["auth", "parse", "authz", "limits", "validate", "input.regex", "upstream"]


def test_config_errors_name_the_file_and_field(tmp_path: Path, upstream: UpstreamStub) -> None:
    import yaml

    from garrison.cli.main import main

    config = base_config(upstream.port, tmp_path)
    config["routes"][0]["kind"] = "grpc"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["gateway", "check", "--config", str(path)]) == 2
    config["routes"][0]["kind"] = "openai"
    config["routes"][0]["upstream_headers"] = {"authorization": "Bearer ${GARRISON_SURELY_UNSET_VAR}"}
    path.write_text(yaml.safe_dump(config))
    assert main(["gateway", "check", "--config", str(path)]) == 2
    config["routes"][0]["upstream_headers"] = {}
    path.write_text(yaml.safe_dump(config))
    assert main(["gateway", "check", "--config", str(path)]) == 0
