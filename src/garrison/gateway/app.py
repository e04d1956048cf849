"""The gateway's ASGI application: one request, through every step, into one audit event.

Steps, in order (``ARCHITECTURE.md``, "Gateway request"):

1. request line: encoded or dot-segment paths and method-override headers are refused;
2. ``auth``: API key or JWT bearer token (:mod:`~garrison.gateway.authn`);
3. route match (404 for authenticated callers only: an anonymous caller learns nothing);
4. body: read under a byte limit and a deadline, content type checked, JSON parsed with a depth
   limit (:mod:`~garrison.gateway.validate`);
5. ``authz``: the principal's roles must grant the route's action on the route and the model;
6. ``limits``: requests, concurrency, tokens and cost reserved atomically (the most this request
   can cost); settled with the actual usage after the upstream answered;
7. ``validate``: the route's JSON Schema and, for ML routes, feature shape and range;
8. ``input.<scanner>``: regex filters from policy, then any registered scanners;
9. ``upstream``: proxy (OpenAI-compatible with SSE streaming, KServe v2, plain JSON);
10. ``output``: label-only / top-k / rounding for the caller's role, output scanners;
11. the audit event is written (durably) before the response leaves, then metrics.

Any exception a step raises that is not a :class:`Denied` denies the request with 500 and the
reason ``internal_error``: a broken step closes the gateway, never opens it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from garrison.gateway.filters import InputScanner, RegexFilter
from garrison.gateway.http import (
    JSON_TYPE,
    NO_STORE,
    Receive,
    Scope,
    Send,
    check_request_line,
    error_body,
    read_body,
    send_response,
)
from garrison.gateway.routes import (
    RouteConfig,
    Router,
    body_model,
    request_texts,
    requested_max_tokens,
    usage_tokens,
)
from garrison.gateway.types import Decision, Denied, Outcome, Principal, RequestFacts
from garrison.gateway.upstream_http import HttpPool, UpstreamError, response_headers

log = logging.getLogger("garrison.gateway")

_UPSTREAM_STATUS = {"timeout": 504, "connect": 502, "closed": 502, "protocol": 502, "too_large": 502}


@dataclass(slots=True)
class _Exchange:
    """Per-request state the handler carries between steps."""

    facts: RequestFacts
    started: float
    upstream_s: float = 0.0
    status: int = 0
    request_bytes: bytes = b""
    response_bytes: bytes = b""
    streamed: bool = False
    admission: Any = None
    guarded: Any = None
    request_id: str = ""
    step: str = "request"
    route: Any = None


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class Gateway:
    """The ASGI application. Build it with :func:`garrison.gateway.server.build_gateway`."""

    def __init__(self, components: Any) -> None:
        self.c = components
        config = components.config
        self.config = config
        self.router = Router(tuple(config.routes))
        self.pools = {
            route.name: HttpPool(route.upstream, timeout=route.timeout_seconds)
            for route in config.routes
            if route.kind != "local"
        }
        self.upstream_headers = components.upstream_headers
        self.scanners: dict[str, list[InputScanner]] = {}
        for route in config.routes:
            scanners: list[InputScanner] = []
            if route.input_filters.deny or route.input_filters.flag:
                scanners.append(RegexFilter(route.input_filters.deny, route.input_filters.flag))
            scanners.extend(components.extra_scanners.get(route.name, ()))
            self.scanners[route.name] = scanners
        self.admin_prefix = config.admin.prefix.rstrip("/") + "/"
        self.server = config.server
        # admin: a configuration read from a file follows that file between requests (config_store)
        self.live: Any = None
        source = getattr(config, "source", None)
        if source is not None:
            from garrison.gateway.config_store import LiveConfig

            self.live = LiveConfig(self, *source)

    # -- ASGI entry ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            target = self if self.live is None else await self.live.current()  # admin: live config
            await target._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets and anything else: not served (the server closes the connection)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.c.start()
                except Exception as exc:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.c.stop()
                for pool in self.pools.values():
                    await pool.close()
                if self.live is not None:  # admin: pools of reloaded configurations
                    await self.live.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request --------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        public = self.c.public_endpoint(path, scope["method"])
        if public is not None:
            status, body, headers = await public()
            await send_response(send, status, body, headers)
            return
        ex = _Exchange(
            facts=RequestFacts(method=scope["method"], path=path, client_ip=_client_ip(scope)),
            started=time.perf_counter(),
        )
        try:
            await self._pipeline(scope, receive, send, ex)
        except Denied as denied:
            await self._deny(send, ex, denied)
        except Exception:
            log.exception("gateway step failed; request denied")
            ex.facts.decisions.append(Decision(step="gateway", outcome=Outcome.DENY, reason="internal_error"))
            await self._deny(send, ex, Denied(500, "internal_error", public="internal error"), noted=True)

    async def _deny(self, send: Send, ex: _Exchange, denied: Denied, *, noted: bool = False) -> None:
        if not noted and (not ex.facts.decisions or ex.facts.decisions[-1].outcome is not Outcome.DENY):
            ex.facts.decisions.append(Decision(step=ex.step, outcome=Outcome.DENY, reason=denied.reason))
        if ex.admission is not None:
            await self.c.settle(ex.admission, ex.route, tokens=None if ex.upstream_s else 0)
            ex.admission = None
        ex.status = denied.status
        body = error_body(denied)
        ex.response_bytes = body
        headers = [JSON_TYPE, NO_STORE, *((k.encode(), v.encode()) for k, v in denied.headers)]
        if denied.status == 401 and not any(k == b"www-authenticate" for k, _ in headers):
            headers.append((b"www-authenticate", b'Bearer realm="garrison"'))
        self._finish(ex, headers)
        await send_response(send, denied.status, body, headers)

    def _finish(self, ex: _Exchange, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the audit event (durable before the response leaves) and the metrics."""
        elapsed = time.perf_counter() - ex.started
        overhead = max(0.0, elapsed - ex.upstream_s)
        event_id = self.c.record(
            ex.facts,
            status=ex.status,
            latency_s=elapsed,
            overhead_s=overhead,
            request=ex.request_bytes,
            response=ex.response_bytes,
            streamed=ex.streamed,
        )
        headers.append((b"x-garrison-overhead-ms", f"{overhead * 1000:.3f}".encode()))
        headers.append((b"x-garrison-request-id", event_id.encode()))
        ex.request_id = event_id

    def _allow(self, ex: _Exchange, started: float, reason: str = "") -> None:
        """Record that the current step let the request through."""
        ex.facts.decisions.append(
            Decision(
                step=ex.step, outcome=Outcome.ALLOW, reason=reason, ms=_ms(time.perf_counter() - started)
            )
        )

    async def _pipeline(self, scope: Scope, receive: Receive, send: Send, ex: _Exchange) -> None:
        facts = ex.facts
        check_request_line(scope)

        ex.step = "auth"
        t = time.perf_counter()
        principal = self.c.authenticate(scope)
        facts.principal = principal
        self._allow(ex, t)

        if facts.path.startswith(self.admin_prefix) or facts.path == self.admin_prefix.rstrip("/"):
            facts.route = "admin"
            await self.c.admin(scope, receive, send, ex, self)
            return

        ex.step = "route"
        match = self.router.match(facts.path)
        if match is None:
            raise Denied(404, "no_route")
        route = ex.route = match.route
        facts.route = route.name
        if facts.method not in route.methods:
            raise Denied(405, "method_not_allowed", headers=(("allow", ", ".join(route.methods)),))

        ex.step = "parse"
        t = time.perf_counter()
        limit, deadline = self.c.body_limit(route), self.server.body_timeout_seconds
        body = ex.request_bytes = await read_body(receive, scope, limit=limit, timeout=deadline)
        parsed = self.c.parse(route, scope, body)
        facts.model = body_model(route.kind, parsed, match.model)
        facts.action = route.action
        self._allow(ex, t)

        features = await self._checks(ex, route, principal, parsed)
        if ex.guarded is not None and ex.guarded.body is not None:
            body = ex.guarded.body  # anonymised: the model sees placeholders, not the values
        forward = self._forward_headers(scope, route)
        limit_headers = self.c.limit_headers(ex.admission)
        if route.kind == "openai" and isinstance(parsed, dict) and parsed.get("stream") is True:
            await self._stream(send, ex, route, forward, body, limit_headers)
        else:
            await self._forward(send, ex, route, principal, forward, body, features, limit_headers)

    async def _checks(self, ex: _Exchange, route: RouteConfig, principal: Principal, parsed: Any) -> Any:
        """Authorization, limits, validation and input scanners; returns the features of ML routes."""
        facts = ex.facts
        ex.step = "authz"
        t = time.perf_counter()
        self.c.authorize(principal, route=route.name, model=facts.model, action=route.action)
        self._allow(ex, t)

        ex.step = "limits"
        t = time.perf_counter()
        ex.admission = await self.c.admit(facts, route, tokens=requested_max_tokens(route, parsed))
        self._allow(ex, t, "fail_open" if ex.admission.fail_open else "")

        ex.step = "validate"
        t = time.perf_counter()
        features = self.c.validate(route, parsed, facts)
        self._allow(ex, t)

        scanners = self.scanners[route.name]
        if scanners:
            texts = list(request_texts(route.kind, parsed))
            for scanner in scanners:
                t = time.perf_counter()
                verdict = scanner.scan(texts)
                ex.step = f"input.{scanner.name}"
                facts.decisions.append(
                    Decision(
                        step=ex.step,
                        outcome=verdict.outcome,
                        reason=verdict.reason,
                        ms=_ms(time.perf_counter() - t),
                    )
                )
                if verdict.outcome is Outcome.DENY:
                    raise Denied(400, verdict.reason or "input_blocked", public="request blocked by policy")
        ex.step = "input.llm"
        ex.guarded = self.c.guard_input(route, principal, parsed, facts)
        return features

    async def _forward(
        self,
        send: Send,
        ex: _Exchange,
        route: RouteConfig,
        principal: Principal,
        forward: list[tuple[bytes, bytes]],
        body: bytes,
        features: Any,
        limit_headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        """Call the upstream, apply output controls, settle the limits, audit, respond."""
        facts = ex.facts
        ex.step = "upstream"
        t = time.perf_counter()
        if route.kind == "local":
            await self._local(send, ex, route, principal, features, limit_headers)
            return
        try:
            upstream = await self.pools[route.name].request(
                facts.method, route.upstream_path or facts.path, forward, body
            )
        except UpstreamError as exc:
            ex.upstream_s = time.perf_counter() - t
            self.c.upstream_error(route.name, exc.kind)
            raise Denied(_UPSTREAM_STATUS.get(exc.kind, 502), f"upstream_{exc.kind}") from None
        ex.upstream_s = time.perf_counter() - t
        self._allow(ex, t, str(upstream.status))

        out_body = upstream.body
        used_tokens: int | None = None
        is_json = (header_value(upstream.headers, b"content-type") or b"").startswith(b"application/json")
        ex.step = "output"
        if is_json and upstream.status < 300:
            out_body, used_tokens = self.c.output(route, principal, facts, out_body, features)
            if ex.guarded is not None:
                ex.step = "output.llm"
                out_body = self.c.guard_output(route, ex.guarded, facts, out_body)
        admission, ex.admission = ex.admission, None
        await self.c.settle(admission, route, tokens=used_tokens)
        ex.status = upstream.status
        ex.response_bytes = out_body
        headers = [h for h in response_headers(upstream.headers) if h[0] != b"content-length"]
        headers.extend(limit_headers)
        self._finish(ex, headers)
        await send_response(send, upstream.status, out_body, headers)

    async def _local(
        self,
        send: Send,
        ex: _Exchange,
        route: RouteConfig,
        principal: Principal,
        features: Any,
        limit_headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        """Answer from a local model (verified and scanned when the gateway started)."""
        t = time.perf_counter()
        body = self.c.local_predict(route, features)
        ex.upstream_s = time.perf_counter() - t
        self._allow(ex, t, "local")
        ex.step = "output"
        body, _ = self.c.output(route, principal, ex.facts, body, features)
        admission, ex.admission = ex.admission, None
        await self.c.settle(admission, route, tokens=None)
        ex.status = 200
        ex.response_bytes = body
        headers = [JSON_TYPE, *limit_headers]
        self._finish(ex, headers)
        await send_response(send, 200, body, headers)

    async def _stream(
        self,
        send: Send,
        ex: _Exchange,
        route: RouteConfig,
        forward: list[tuple[bytes, bytes]],
        body: bytes,
        limit_headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        facts = ex.facts
        ex.step = "upstream"
        t = time.perf_counter()
        try:
            upstream = await self.pools[route.name].stream(
                facts.method, route.upstream_path or facts.path, forward, body
            )
        except UpstreamError as exc:
            ex.upstream_s = time.perf_counter() - t
            self.c.upstream_error(route.name, exc.kind)
            raise Denied(_UPSTREAM_STATUS.get(exc.kind, 502), f"upstream_{exc.kind}") from None
        ex.upstream_s = time.perf_counter() - t
        facts.decisions.append(
            Decision(
                step="upstream", outcome=Outcome.ALLOW, reason=str(upstream.status), ms=_ms(ex.upstream_s)
            )
        )
        ex.status = upstream.status
        ex.streamed = True
        headers = response_headers(upstream.headers)
        headers.extend(limit_headers)
        # the audit event is written before the first byte: the caller has a response from here on
        self._finish(ex, headers)
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        used: int | None = None
        tail = b""
        guard = self.c.guard_stream(route, ex.guarded, facts) if ex.guarded is not None else None
        try:
            async for chunk in upstream.chunks:
                if b'"usage"' in chunk or b'"usage"' in tail + chunk[:16]:
                    used = _stream_usage(tail + chunk) or used
                tail = chunk[-64:]
                out = guard.feed(chunk) if guard is not None else chunk
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamError as exc:
            self.c.upstream_error(route.name, exc.kind)
        finally:
            admission, ex.admission = ex.admission, None
            await self.c.settle(admission, route, tokens=used)
        last = b""
        if guard is not None:
            last = guard.finish()
            self.c.record_stream_end(facts, ex.request_id)
        await send({"type": "http.response.body", "body": last, "more_body": False})

    def _forward_headers(self, scope: Scope, route: RouteConfig) -> list[tuple[bytes, bytes]]:
        kept = []
        for name, value in scope["headers"]:
            # not accept-encoding: the gateway reads JSON answers (usage, output controls, scanners)
            if name in (b"content-type", b"accept"):
                kept.append((bytes(name), bytes(value)))
        kept.extend(self.upstream_headers[route.name])
        tracing = getattr(self.c, "tracing", None)  # tracing: W3C traceparent naming this request's span
        if tracing is not None:
            kept.extend(tracing.upstream_headers())
        return kept


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name`` in a header list."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _stream_usage(data: bytes) -> int | None:
    """``usage.total_tokens`` from the SSE event that carries it (OpenAI sends it last)."""
    for line in data.split(b"\n"):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                tokens = usage_tokens(json.loads(line[5:]))
            except ValueError:
                continue
            if tokens is not None:
                return tokens
    return None
