"""Building the gateway from its configuration, and serving it on uvicorn.

:class:`Components` owns every stateful part (store, key cache, JWT verifier, authorizer, limiter,
audit log, metrics, per-route validators and scanners) and is what the ASGI app in
:mod:`~garrison.gateway.app` calls at each step. :func:`serve` runs uvicorn with httptools and
uvloop, one or several worker processes, no proxy-header trust (``X-Forwarded-For`` is never used
to identify a caller), and Garrison's JSON logs instead of uvicorn's access log. With ``server.tls``
uvicorn terminates TLS with the gateway's own context and a protocol that hands the verified client
certificate to the authenticator (:mod:`~garrison.gateway.tls`); with ``tracing.enabled`` the app is
wrapped in the tracing middleware and the pipeline steps become child spans
(:mod:`~garrison.gateway.tracing`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from garrison.core.config import DEFAULT_STATE_DIR
from garrison.core.events import Event
from garrison.gateway.app import Gateway
from garrison.gateway.audit import AuditLog, request_event
from garrison.gateway.authn import Authenticator
from garrison.gateway.authz import Authorizer
from garrison.gateway.config import GatewayConfig, load_gateway_config
from garrison.gateway.extraction import ExtractionMonitor
from garrison.gateway.filters import InputScanner
from garrison.gateway.guardrails import GuardedRequest, Guardrails, SseGuard
from garrison.gateway.keys import KeyCache
from garrison.gateway.limits import Admission, Limiter, LimitsBackendError
from garrison.gateway.local_models import LocalModel
from garrison.gateway.local_onnx import OnnxLocalModel, load_local_model
from garrison.gateway.metrics import Metrics
from garrison.gateway.ml_features import InputDetector, run_detector
from garrison.gateway.output_controls import OutputPolicy, apply_output_policy, policy_for, predicted_classes
from garrison.gateway.routes import RouteConfig, usage_tokens
from garrison.gateway.tls import PROTOCOL, TlsConfig, client_subject, server_context, uvicorn_context_factory
from garrison.gateway.tracing import Tracing, TracingMiddleware, traced_subclass, tracing_for
from garrison.gateway.types import Decision, Denied, Outcome, Principal, RequestFacts
from garrison.gateway.validate import RouteValidator, check_content_type
from garrison.store import Store

CONFIG_ENV = "GARRISON_GATEWAY_CONFIG"
SHIPPER_ENV = "GARRISON_GATEWAY_SHIPPER"

log = logging.getLogger("garrison.gateway")

PublicHandler = Callable[[], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]

_JSON = (b"content-type", b"application/json")


def store_url(config: GatewayConfig) -> str:
    """The store URL for ``config.db`` (default: ``.garrison/garrison.db`` in the working directory)."""
    if config.db is None:
        return "sqlite:///" + str((Path.cwd() / DEFAULT_STATE_DIR / "garrison.db").resolve())
    if "://" in config.db:
        return config.db
    return "sqlite:///" + str(Path(config.db).expanduser().resolve())


class Components:
    """Every stateful part of one gateway worker."""

    validators: dict[str, RouteValidator]
    monitors: dict[str, ExtractionMonitor]
    upstream_headers: dict[str, list[tuple[bytes, bytes]]]
    local_models: dict[str, LocalModel | OnnxLocalModel]
    guardrails: dict[str, Guardrails]
    _needs_usage: dict[str, bool]

    def __init__(
        self,
        config: GatewayConfig,
        *,
        store: Store | None = None,
        extra_scanners: dict[str, list[InputScanner]] | None = None,
        detectors: Mapping[str, InputDetector] | None = None,
        ship_audit: bool = True,
        tracing: Tracing | None = None,
    ) -> None:
        """``extra_scanners`` by route name run after the regex filters; ``detectors`` by name are the
        input detectors routes may name in ``validation.detector`` (out-of-distribution, adversarial);
        ``ship_audit=False`` leaves the journals to a ``garrison audit ship`` process; ``tracing``
        replaces the one ``config.tracing`` describes (tests: an in-memory exporter)."""
        self.config = config
        self.store = store if store is not None else Store.open(store_url(config))
        self.authn = Authenticator(config.auth, store=self.store)
        self.authz = Authorizer(config.roles, admin_role=config.admin.role)
        self.limiter = Limiter.from_config(config.limits_section())
        self.audit = AuditLog(config.audit, self.store, ship=ship_audit)
        self.metrics = Metrics(config.metrics.multiproc_dir) if config.metrics.enabled else None
        loaded = {name: _load_detector(name, spec.path) for name, spec in config.detectors.items()}
        self._build_routes(config, {**loaded, **(detectors or {})}, previous=None)
        self.extra_scanners = extra_scanners or {}
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.tracing = tracing if tracing is not None else tracing_for(config.tracing)
        """OpenTelemetry tracing; None when off (then nothing of it is imported)."""
        if self.tracing is not None:
            self.__class__ = _traced_components()  # each step runs in a child span of the request's

    def _build_routes(
        self, config: GatewayConfig, detectors: Mapping[str, InputDetector], previous: Components | None
    ) -> None:
        """The per-route parts; with ``previous``, a route whose section is unchanged keeps its own
        (validator, extraction monitor, loaded local model, guardrails), so a reload neither reloads
        models nor resets an extraction monitor's history."""
        before = {r.name: r for r in previous.config.routes} if previous is not None else {}
        keep_detectors = previous is not None and config.detectors == previous.config.detectors

        def reuse(route: RouteConfig, field: str, held: Mapping[str, Any], make: Callable[[], Any]) -> Any:
            old = before.get(route.name)
            if old is not None and route.name in held and getattr(old, field) == getattr(route, field):
                return held[route.name]
            return make()

        self.validators = {
            r.name: reuse(
                r,
                "validation",
                previous.validators if previous is not None and keep_detectors else {},
                functools.partial(
                    RouteValidator, r.validation, detectors=detectors, where=f"route {r.name!r}"
                ),
            )
            for r in config.routes
        }
        self.monitors = {
            r.name: reuse(
                r,
                "extraction",
                previous.monitors if previous else {},
                functools.partial(ExtractionMonitor, r.extraction),
            )
            for r in config.routes
            if r.extraction is not None
        }
        self.upstream_headers = {
            r.name: [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in r.upstream_headers.items()
            ]
            for r in config.routes
        }
        self.local_models = {
            r.name: reuse(
                r,
                "local",
                previous.local_models if previous else {},
                functools.partial(load_local_model, r.local, where=f"route {r.name!r}"),
            )
            for r in config.routes
            if r.local is not None
        }
        self.guardrails = {
            r.name: reuse(
                r,
                "guardrails",
                previous.guardrails if previous else {},
                functools.partial(Guardrails, r.guardrails),
            )
            for r in config.routes
            if r.guardrails is not None
        }
        self._needs_usage = {r.name: _needs_usage(r, config) for r in config.routes}

    def with_config(self, config: GatewayConfig) -> Components:
        """A copy serving ``config`` that shares every stateful part of this one (store, keys, audit,
        metrics, the limits backend and its counters, tracing) and reuses the parts of unchanged routes
        and detectors; used by live reloads (:mod:`garrison.gateway.config_store`)."""
        c = copy.copy(self)
        c.config = config
        c.authz = Authorizer(config.roles, admin_role=config.admin.role)
        c.limiter = Limiter(config.limits, self.limiter.backend, fail_open=self.limiter.fail_open)
        detectors: dict[str, InputDetector] = {
            v.config.detector: v.detector
            for v in self.validators.values()
            if v.detector is not None and v.config.detector is not None
        }
        for name, spec in config.detectors.items():
            if name not in detectors or spec != self.config.detectors.get(name):
                detectors[name] = _load_detector(name, spec.path)
        c._build_routes(config, detectors, previous=self)
        return c

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the audit journal, load keys, start background work; then report ready."""
        await self.audit.start()
        warm = getattr(self.limiter.backend, "warm", None)
        if warm is not None:
            try:
                await warm()
            except LimitsBackendError as exc:  # requests fail closed (or open) per policy until it is back
                log.warning("limits backend not reachable at start-up: %s", exc.message)
        keys = self.authn.keys
        if keys is not None:
            keys.refresh()
            interval = self.config.auth.key_refresh_seconds / 2
            if interval > 0:
                self._tasks.append(asyncio.create_task(_refresh_keys(keys, interval)))
        if self.metrics is not None:
            self.metrics.start()
        self.ready = True

    async def stop(self) -> None:
        """Flush the audit journal and close everything."""
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await self.audit.stop()
        await self.limiter.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            self.tracing.flush()

    # -- endpoints without authentication ------------------------------------------------------

    def public_endpoint(self, path: str, method: str) -> PublicHandler | None:
        """Health, readiness and (when public) metrics; None for everything else."""
        if method != "GET":
            return None
        if path == "/healthz":
            return self._health
        if path == "/readyz":
            return self._ready
        if path == "/metrics" and self.metrics is not None and self.config.metrics.public:
            return self._metrics
        return None

    async def _health(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        return 200, b'{"status":"ok"}', [_JSON]

    async def _ready(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if self.ready:
            return 200, b'{"status":"ready"}', [_JSON]
        return 503, b'{"status":"starting"}', [_JSON]

    async def _metrics(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        assert self.metrics is not None
        body, content_type = self.metrics.render()
        return 200, body, [(b"content-type", content_type.encode())]

    # -- steps ---------------------------------------------------------------------------------

    def authenticate(self, scope: dict[str, Any]) -> Principal:
        # the certificate subject comes only from the server's TLS extension, never from a header
        return self.authn.authenticate(scope["headers"], client_cert_subject=client_subject(scope))

    def body_limit(self, route: RouteConfig) -> int:
        return route.validation.max_body_bytes

    def parse(self, route: RouteConfig, scope: dict[str, Any], body: bytes) -> Any:
        validator = self.validators[route.name]
        check_content_type(scope["headers"], route.validation.content_types)  # length: read_body did it
        return validator.parse(body)

    def authorize(self, principal: Principal, *, route: str, model: str, action: str) -> None:
        self.authz.check(principal, route=route, model=model, action=action)

    async def admit(self, facts: RequestFacts, route: RouteConfig, *, tokens: int) -> Admission:
        principal = facts.principal
        assert principal is not None
        return await self.limiter.admit(
            principal_id=principal.id,
            roles=principal.roles,
            route=route.name,
            max_tokens=tokens or None,
            max_cost=_cost(route, tokens) if tokens else None,
        )

    def limit_headers(self, admission: Admission) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in admission.headers]

    def validate(self, route: RouteConfig, parsed: Any, facts: RequestFacts) -> Any:
        """Schema, features, the input detector, and the extraction monitor's gate."""
        validator = self.validators[route.name]
        validator.validate(parsed)
        if validator.features is None:
            return None
        features = validator.features.extract(parsed)
        if validator.detector is not None:
            verdict = run_detector(validator.detector, features)
            if verdict is not None:
                if route.validation.detector_action == "deny":
                    raise Denied(422, f"input_detector:{verdict.detector}")
                facts.decisions.append(
                    Decision(
                        step=f"detector.{verdict.detector}", outcome=Outcome.FLAG, reason="above_threshold"
                    )
                )
        monitor = self.monitors.get(route.name)
        if monitor is not None and facts.principal is not None:
            monitor.gate(facts.principal.id)
        return features

    def output(
        self, route: RouteConfig, principal: Principal, facts: RequestFacts, body: bytes, features: Any
    ) -> tuple[bytes, int | None]:
        """Apply the caller's output policy and read token usage; return the body to send."""
        policy = _policy_for(route, principal)
        monitor = self.monitors.get(route.name)
        if policy is None and monitor is None and not self._needs_usage[route.name]:
            return body, None
        try:
            parsed = json.loads(body)
        except ValueError:
            if policy is not None:
                raise Denied(502, "output_not_json") from None
            return body, None
        tokens = usage_tokens(parsed)
        if monitor is not None and features is not None:
            self._watch(monitor, principal, facts, features, parsed)
        if policy is None:
            return body, tokens
        rewritten = apply_output_policy(policy, parsed)
        return json.dumps(rewritten, separators=(",", ":")).encode(), tokens

    def _watch(
        self,
        monitor: ExtractionMonitor,
        principal: Principal,
        facts: RequestFacts,
        features: Any,
        parsed: Any,
    ) -> None:
        """Feed the extraction monitor the query and the full prediction; an alert becomes an event."""
        alert = monitor.observe(principal.id, features, predicted_classes(parsed))
        if alert is None:
            return
        facts.decisions.append(Decision(step="extraction", outcome=Outcome.FLAG, reason=alert.kind))
        self.audit.record(
            Event(
                type="gateway.extraction.suspected",
                actor=principal.id,
                subject=facts.route,
                data={
                    "signal": alert.kind,
                    "score": round(float(alert.score), 6),
                    "threshold": round(float(alert.threshold), 6),
                    "queries": int(alert.queries),
                    "action": monitor.config.action,
                },
            )
        )
        log.warning("model extraction suspected on %s by %s: %s", facts.route, principal.id, alert.kind)

    def local_predict(self, route: RouteConfig, features: Any) -> bytes:
        """A local model's answer to the request's features, as the JSON body to send."""
        answer = self.local_models[route.name].predict(features)
        return json.dumps(answer, separators=(",", ":")).encode()

    def guard_input(
        self, route: RouteConfig, principal: Principal, parsed: Any, facts: RequestFacts
    ) -> GuardedRequest | None:
        """The LLM input step of a guarded route (None on other routes)."""
        guard = self.guardrails.get(route.name)
        return guard.check_input(parsed, principal, facts) if guard is not None else None

    def guard_output(
        self, route: RouteConfig, guarded: GuardedRequest, facts: RequestFacts, body: bytes
    ) -> bytes:
        """The LLM output step on a complete JSON answer."""
        try:
            parsed = json.loads(body)
        except ValueError:
            raise Denied(502, "output_not_json") from None
        checked = self.guardrails[route.name].check_output(parsed, guarded, facts)
        return json.dumps(checked, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def guard_stream(self, route: RouteConfig, guarded: GuardedRequest, facts: RequestFacts) -> SseGuard:
        """The LLM output step on an SSE stream."""
        return self.guardrails[route.name].stream(guarded, facts)

    def record_stream_end(self, facts: RequestFacts, request_id: str) -> None:
        """A streamed answer's output decision, known only at its end, as a second audit event."""
        final = facts.decisions[-1]
        self.audit.record(
            Event(
                type="gateway.stream.completed",
                actor=facts.principal.id if facts.principal else "anonymous",
                subject=facts.route,
                data={
                    "request_id": request_id,
                    "step": final.step,
                    "outcome": final.outcome.value,
                    "reason": final.reason,
                },
            )
        )

    async def settle(self, admission: Admission | None, route: RouteConfig, *, tokens: int | None) -> None:
        """Charge what the request used: ``tokens`` from the upstream's usage, None for the maximum."""
        if admission is None:
            return
        cost = _cost(route, tokens) if tokens is not None else None
        await self.limiter.settle(admission, tokens=tokens, cost=cost)

    def record(
        self,
        facts: RequestFacts,
        *,
        status: int,
        latency_s: float,
        overhead_s: float,
        request: bytes,
        response: bytes,
        streamed: bool,
    ) -> str:
        """Journal the request's audit event (durable on return) and count it; return the event id."""
        event = request_event(
            facts,
            status=status,
            latency_ms=latency_s * 1000.0,
            overhead_ms=overhead_s * 1000.0,
            request_body=request,
            response_body=None if streamed else response,
            config=self.config.audit,
        )
        self.audit.record(event)
        if self.metrics is not None:
            self.metrics.observe_request(facts, status=status, duration_s=latency_s, overhead_s=overhead_s)
        if self.tracing is not None:
            self.tracing.annotate(facts, status=status, request_id=event.id)
        return event.id

    def upstream_error(self, route: str, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_error(route, kind)

    async def admin(self, scope: Any, receive: Any, send: Any, ex: Any, gateway: Gateway) -> None:
        from garrison.gateway.admin import handle_admin

        await handle_admin(self, scope, receive, send, ex, gateway)


@functools.cache
def _traced_components() -> type[Components]:
    """:class:`Components` with a child span around each step (made once, when tracing is first on)."""
    return traced_subclass(Components)


def _load_detector(name: str, path: Path) -> InputDetector:
    """An input detector saved by ``garrison assess detector`` (arrays only; loading runs nothing)."""
    from garrison.assess.input_detectors import MahalanobisDetector

    found = MahalanobisDetector.load(path)
    found.name = name
    return found


async def _refresh_keys(keys: KeyCache, interval: float) -> None:
    """Reload the key cache off the event loop, so no request ever waits for the store."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(keys.refresh)
        except Exception:  # the cache keeps its last snapshot and fails closed when it is too old
            log.warning("API key refresh failed", exc_info=True)


def _cost(route: RouteConfig, tokens: int) -> float:
    """The most a request of ``tokens`` tokens can cost on ``route`` (the dearer of the two prices)."""
    price = max(route.pricing.prompt_per_1k, route.pricing.completion_per_1k)
    return tokens * price / 1000.0


def _needs_usage(route: RouteConfig, config: GatewayConfig) -> bool:
    if route.kind != "openai":
        return False
    return any(rule.tokens is not None or rule.cost is not None for rule in config.limits)


_FULL = OutputPolicy(mode="full")


def _policy_for(route: RouteConfig, principal: Principal) -> OutputPolicy | None:
    """The caller's output policy on ``route``, or None when responses pass unchanged."""
    if not route.output:
        return None
    by_role = {role: policy for role, policy in route.output.items() if role != "*"}
    chosen = policy_for(principal.roles, by_role, route.output.get("*", _FULL))
    return None if chosen.mode == "full" else chosen


def build_app(config: GatewayConfig, **kwargs: Any) -> Gateway:
    """The gateway for ``config`` (without the tracing middleware; see :func:`build_asgi`)."""
    return Gateway(Components(config, **kwargs))


def build_asgi(config: GatewayConfig, **kwargs: Any) -> Gateway | TracingMiddleware:
    """The ASGI app to serve: the gateway, inside the tracing middleware when tracing is on."""
    gateway = build_app(config, **kwargs)
    tracing = gateway.c.tracing
    if tracing is None:
        return gateway
    public = gateway.c.public_endpoint
    return TracingMiddleware(
        gateway, tracing, is_public=lambda path, method: public(path, method) is not None
    )


def app_from_env() -> Gateway | TracingMiddleware:
    """uvicorn factory: the config path comes from ``GARRISON_GATEWAY_CONFIG`` (set by ``serve``),
    and the journals are shipped by the follower ``serve`` started (``GARRISON_GATEWAY_SHIPPER``)."""
    external = os.environ.get(SHIPPER_ENV) == "external"
    return build_asgi(load_gateway_config(Path(os.environ[CONFIG_ENV])), ship_audit=not external)


def serve(config_path: Path, *, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Run the gateway on uvicorn until interrupted."""
    import uvicorn

    config = load_gateway_config(config_path)  # fail here, before any worker starts
    if workers > 1 and config.limits_backend.type == "memory" and config.limits:
        from garrison.core.errors import ConfigError

        raise ConfigError(
            "limits_backend type memory counts per worker process; with several workers use sqlite or redis",
            hint="set limits_backend: {type: sqlite, path: limits.db}",
        )
    tls = config.server.tls
    if tls is not None:
        server_context(tls)  # a missing or unusable certificate fails here, before any worker starts
    os.environ[CONFIG_ENV] = str(config_path.resolve())
    os.environ[SHIPPER_ENV] = "external"
    shipper = _start_shipper(config)
    try:
        _run_uvicorn(uvicorn, host=host, port=port, workers=workers, log_level=log_level, tls=tls)
    finally:
        shipper.terminate()  # it makes a last pass over the journals, then exits
        try:
            shipper.wait(30)
        except subprocess.TimeoutExpired:
            shipper.kill()


def _start_shipper(config: GatewayConfig) -> subprocess.Popen[bytes]:
    """``garrison audit ship`` for this gateway's journals, beside the workers.

    Workers only append to their journals (one ``write()`` per request); this process moves the
    journals into the store. Keeping that work out of the workers keeps it from competing with
    request handling for the interpreter lock.
    """
    command = [
        sys.executable,
        "-m",
        "garrison",
        "audit",
        "ship",
        "--journal-dir",
        str(config.audit.journal_dir.expanduser().resolve()),
        "--db",
        store_url(config),
        "--interval-ms",
        str(config.audit.flush_interval_ms),
        "--parent-pid",
        str(os.getpid()),
    ]
    return subprocess.Popen(command)  # noqa: S603 - our own interpreter and module, list argv, no shell


def _run_uvicorn(
    uvicorn: Any, *, host: str, port: int, workers: int, log_level: str, tls: TlsConfig | None = None
) -> None:
    from garrison.gateway.logs import uvicorn_log_config

    secure: dict[str, Any] = {}
    if tls is not None:
        # the gateway's own SSLContext (every worker builds it), and httptools plus the TLS extension
        secure = {"ssl_context_factory": functools.partial(uvicorn_context_factory, tls)}
    uvicorn.run(
        "garrison.gateway.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools" if tls is None else PROTOCOL,
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=uvicorn_log_config(log_level),
        timeout_keep_alive=5,
        backlog=4096,
        **secure,
    )
