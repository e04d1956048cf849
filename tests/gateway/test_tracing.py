"""OpenTelemetry traces of gateway requests, through the real ASGI app and a real upstream.

Spans go to the SDK's in-memory exporter; the upstream is the stub server of the end-to-end tests,
which keeps every request's headers, so the ``traceparent`` it received can be compared with the
request's span.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.gateway.harness import UpstreamStub, base_config, chat, make_keys

from garrison.gateway.config import GatewayConfig
from garrison.gateway.server import build_app, build_asgi
from garrison.gateway.tracing import Tracing, TracingConfig, TracingMiddleware

if TYPE_CHECKING:  # OpenTelemetry is imported inside the tests: the subprocess test imports this module
    from opentelemetry.sdk.trace import ReadableSpan

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
"""A caller's W3C trace context (the example of the W3C recommendation)."""


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def _call(
    app: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request through the ASGI app, the way uvicorn would deliver it."""
    data = json.dumps(body).encode() if body is not None else b""
    raw = [
        (b"host", b"gateway"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(data)),
    ]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    pending = [{"type": "http.request", "body": data, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.sleep(3600)  # the client is still connected
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return Answer(
        status=start["status"],
        headers=dict(start["headers"]),
        body=b"".join(m.get("body", b"") for m in sent[1:]),
    )


@dataclass
class Traced:
    config: GatewayConfig
    keys: dict[str, str]
    upstream: UpstreamStub


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    tmp = tmp_path_factory.mktemp("tracing")
    upstream = UpstreamStub().start()
    config = GatewayConfig.model_validate(
        base_config(
            upstream.port, tmp, tracing={"enabled": True, "exporter": "none", "service_name": "gw-test"}
        )
    )
    keys = make_keys(tmp / "gw.db", {"app": ["user"], "scorer": ["scorer"]})
    try:
        yield Traced(config=config, keys=keys, upstream=upstream)
    finally:
        upstream.stop()


def _run(
    traced: Traced, requests: list[dict[str, Any]], **tracing: Any
) -> tuple[list[Answer], list[ReadableSpan]]:
    """Serve ``requests`` with a fresh gateway whose spans go to memory; return answers and spans."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    settings = TracingConfig(enabled=True, exporter="none", service_name="gw-test", **tracing)
    app = build_asgi(traced.config, tracing=Tracing(settings, exporter=exporter))
    assert isinstance(app, TracingMiddleware)
    gateway: Any = app.app

    async def serve() -> list[Answer]:
        await gateway.c.start()
        try:
            return [await _call(app, **request) for request in requests]
        finally:
            await gateway.c.stop()
            for pool in gateway.pools.values():
                await pool.close()
            gateway.c.store.close()

    answers = asyncio.run(serve())
    return answers, list(exporter.get_finished_spans())


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _traceparent(upstream: UpstreamStub, marker: bytes) -> str:
    """The ``traceparent`` the upstream received with the request whose body contains ``marker``."""
    for head, body in upstream.seen:
        if marker in body:
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"traceparent":
                    return value.strip().decode()
            return ""
    raise AssertionError(f"the upstream never saw {marker!r}")


def test_an_admitted_request_is_one_span_with_a_child_per_step(traced: Traced) -> None:
    from opentelemetry import trace

    key = traced.keys["app"]
    (answer,), spans = _run(
        traced,
        [{"method": "POST", "path": "/v1/chat/completions", "body": chat("trace me"), "headers": _auth(key)}],
    )
    assert answer.status == 200
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "POST chat"
    assert root.kind is trace.SpanKind.SERVER
    assert root.resource.attributes["service.name"] == "gw-test"
    attributes = dict(root.attributes or {})
    assert attributes["garrison.route"] == "chat"
    assert attributes["garrison.decision"] == "allow"
    assert attributes["http.response.status_code"] == 200
    assert str(attributes["garrison.principal.id"]).startswith("key_")
    assert attributes["garrison.principal.kind"] == "api_key"
    assert attributes["garrison.request_id"] == answer.headers[b"x-garrison-request-id"].decode()
    children = {s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    assert {
        "garrison.auth",
        "garrison.parse",
        "garrison.authz",
        "garrison.limits",
        "garrison.validate",
    } <= children
    assert {"garrison.output", "garrison.settle"} <= children
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    # the key itself is in no span: only its id
    secret = key.rsplit("_", 1)[1]
    assert all(secret not in s.to_json() for s in spans)
    # the upstream was told the request's span as its parent
    version, trace_id, parent_id, flags = _traceparent(traced.upstream, b"trace me").split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == root.context.trace_id
    assert int(parent_id, 16) == root.context.span_id


def test_a_denied_request_records_the_step_and_reason(traced: Traced) -> None:
    requests = [
        {
            "method": "POST",
            "path": "/predict",
            "body": {"inputs": [[1, 2, 3, 4]]},
            "headers": _auth(traced.keys["app"]),
        },
        {"method": "POST", "path": "/v1/chat/completions", "body": chat(), "headers": _auth("gar_nope")},
    ]
    (forbidden, anonymous), spans = _run(traced, requests)
    assert (forbidden.status, anonymous.status) == (403, 401)
    roots = [s for s in spans if s.parent is None]
    by_status = {dict(s.attributes or {})["http.response.status_code"]: s for s in roots}
    denied = dict(by_status[403].attributes or {})
    assert (denied["garrison.decision"], denied["garrison.denied.step"]) == ("deny", "authz")
    assert denied["garrison.denied.reason"]
    authz = [
        s
        for s in spans
        if s.name == "garrison.authz" and s.parent and s.parent.span_id == by_status[403].context.span_id
    ]
    assert dict(authz[0].attributes or {})["garrison.outcome"] == "deny"
    unknown = dict(by_status[401].attributes or {})
    assert unknown["garrison.denied.step"] == "auth"
    assert "garrison.principal.id" not in unknown
    assert all("gar_nope" not in s.to_json() for s in spans)


def test_a_callers_trace_context_is_ignored_unless_configured(traced: Traced) -> None:
    from opentelemetry import trace

    request = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": {**_auth(traced.keys["app"]), "traceparent": INCOMING},
    }
    _, spans = _run(traced, [dict(request, body=chat("fresh trace"))])
    (root,) = [s for s in spans if s.parent is None]
    incoming_trace = int(INCOMING.split("-")[1], 16)
    assert root.context.trace_id != incoming_trace
    assert _traceparent(traced.upstream, b"fresh trace").split("-")[1] != INCOMING.split("-")[1]

    _, spans = _run(traced, [dict(request, body=chat("joined trace"))], continue_incoming=True)
    (root,) = [s for s in spans if s.kind is trace.SpanKind.SERVER]
    assert root.context.trace_id == incoming_trace
    assert root.parent is not None
    assert root.parent.span_id == int(INCOMING.split("-")[2], 16)
    assert _traceparent(traced.upstream, b"joined trace").split("-")[1] == INCOMING.split("-")[1]


def test_health_endpoints_make_no_spans_and_sampling_drops_the_rest(traced: Traced) -> None:
    (health,), spans = _run(traced, [{"method": "GET", "path": "/healthz"}])
    assert health.status == 200
    assert spans == []
    request = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "body": chat("unsampled"),
        "headers": _auth(traced.keys["app"]),
    }
    (answer,), spans = _run(traced, [request], sample_ratio=0.0)
    assert answer.status == 200
    assert spans == []
    flags = _traceparent(traced.upstream, b"unsampled").split("-")[3]
    assert not int(flags, 16) & 1  # context sent, marked not sampled


_DISABLED = """
import asyncio, json, sys
from garrison.gateway.config import load_gateway_config
from garrison.gateway.server import build_app, build_asgi
from pathlib import Path
from tests.gateway.test_tracing import _call
app = build_asgi(load_gateway_config(Path(sys.argv[1])))
async def main():
    await app.c.start()
    answer = await _call(app, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []},
                         {"authorization": "Bearer " + sys.argv[2]})
    await app.c.stop()
    for pool in app.pools.values():
        await pool.close()
    return answer.status
status = asyncio.run(main())
print(json.dumps({"status": status, "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
"""


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    import yaml

    keys = make_keys(tmp_path / "gw.db", {"app": ["user"]})
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config(1, tmp_path)))  # upstream port 1: nothing listens
    done = subprocess.run(
        [sys.executable, "-c", _DISABLED, str(path), keys["app"]],
        capture_output=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result == {"status": 502, "otel": []}  # the request went through the pipeline to the upstream


def test_tracing_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="only used with exporter: otlp-http"):
        TracingConfig(enabled=True, exporter="console", endpoint="http://collector:4318/v1/traces")
    with pytest.raises(ValueError, match="http:// or https://"):
        TracingConfig(enabled=True, endpoint="collector:4318")
    with pytest.raises(ValueError, match="less than or equal to 1"):
        TracingConfig(enabled=True, sample_ratio=1.5)
    exporting = Tracing(TracingConfig(enabled=True, endpoint="http://127.0.0.1:1/v1/traces"))
    assert exporting.upstream_headers() == []  # no current span: nothing to propagate
    exporting.provider.shutdown()


def test_a_copy_of_traced_components_checks_with_its_own_state(traced: Traced) -> None:
    # the admin API's live reload copies the components and replaces their roles: a step must use
    # the copy's roles, not those of the instance it was copied from
    from garrison.gateway.auth_config import RolesConfig
    from garrison.gateway.authz import Authorizer
    from garrison.gateway.types import Denied, Principal

    tracing = Tracing(TracingConfig(enabled=True, exporter="none"))
    gateway = build_app(traced.config, tracing=tracing)
    try:
        components = gateway.c
        assert type(components).__name__ == "TracedComponents"
        clone = copy.copy(components)
        clone.authz = Authorizer(RolesConfig({}), admin_role="admin")
        caller = Principal(id="key_x", kind="api_key", roles=frozenset({"user"}))
        components.authorize(caller, route="chat", model="gpt-4o-mini", action="invoke")
        with pytest.raises(Denied):
            clone.authorize(caller, route="chat", model="gpt-4o-mini", action="invoke")
    finally:
        gateway.c.store.close()


def test_step_spans_can_be_turned_off(traced: Traced) -> None:
    request = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "body": chat(),
        "headers": _auth(traced.keys["app"]),
    }
    (answer,), spans = _run(traced, [request], step_spans=False)
    assert answer.status == 200
    assert [s.name for s in spans] == ["POST chat"]
