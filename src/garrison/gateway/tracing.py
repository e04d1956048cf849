"""OpenTelemetry traces of gateway requests (optional: ``pip install 'garrison[otel]'``).

With ``tracing.enabled`` each request (not the health, readiness and metrics endpoints) becomes one
server span named ``METHOD route``, carrying the route, the principal's id (a key id, a JWT subject,
a certificate subject: never a credential), the status, the decision (``allow`` or ``deny`` with the
step and reason that denied) and the audit event's id, so a trace and an audit event can be matched.
Each pipeline step (``garrison.auth``, ``garrison.authz``, ``garrison.limits``, …) is a child span.
The request to the upstream carries a W3C ``traceparent`` naming the request's span, so the
upstream's own spans join the trace.

A caller's ``traceparent`` is ignored unless ``continue_incoming`` is set: the caller is not
trusted to choose trace ids or to force sampling. When tracing is off, nothing of OpenTelemetry is
imported and the pipeline does not change.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.core.errors import MissingExtraError
from garrison.gateway.types import Denied, Outcome, RequestFacts

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")

#: Components' methods traced as child spans, and the step each one is.
TRACED_STEPS: tuple[tuple[str, str], ...] = (
    ("authenticate", "auth"),
    ("parse", "parse"),
    ("authorize", "authz"),
    ("admit", "limits"),
    ("validate", "validate"),
    ("guard_input", "input.llm"),
    ("local_predict", "local"),
    ("output", "output"),
    ("guard_output", "output.llm"),
    ("settle", "settle"),
)


class TracingConfig(BaseModel):
    """The ``tracing:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Trace requests (needs the ``otel`` extra)."""
    service_name: str = Field(default="garrison-gateway", min_length=1, max_length=200)
    """``service.name`` of the spans."""
    exporter: Literal["otlp-http", "console", "none"] = "otlp-http"
    """Where spans go: an OTLP/HTTP collector, stderr, or nowhere (``traceparent`` is still sent)."""
    endpoint: str | None = None
    """OTLP/HTTP traces URL, e.g. ``http://collector:4318/v1/traces``; absent: OpenTelemetry's
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``http://localhost:4318/v1/traces``."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of requests traced (by trace id)."""
    step_spans: bool = True
    """A child span per pipeline step (about 10 per request); off: the request span alone."""
    continue_incoming: bool = False
    """Continue the trace a caller's ``traceparent`` names (the caller then picks trace ids and sampling)."""

    @model_validator(mode="after")
    def _endpoint(self) -> TracingConfig:
        if self.endpoint is not None:
            if self.exporter != "otlp-http":
                raise ValueError("endpoint is only used with exporter: otlp-http")
            if not self.endpoint.startswith(("http://", "https://")):
                raise ValueError("endpoint must be an http:// or https:// URL")
        return self


class Tracing:
    """A tracer provider and what the gateway does with it: request spans, step spans, propagation."""

    def __init__(self, config: TracingConfig, *, exporter: SpanExporter | None = None) -> None:
        """Spans go to ``exporter`` when given (tests: an in-memory exporter), else per ``config``."""
        try:
            from opentelemetry import trace
            from opentelemetry.context import Context
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as exc:
            raise MissingExtraError("Gateway tracing", extra="otel", module="opentelemetry-sdk") from exc
        self.config = config
        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            resource=Resource.create({"service.name": config.service_name}),
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif config.exporter == "otlp-http":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise MissingExtraError(
                    "tracing exporter otlp-http",
                    extra="otel",
                    module="opentelemetry-exporter-otlp-proto-http",
                ) from exc
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.endpoint)))
        elif config.exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        self.provider: TracerProvider = provider
        """The provider (the gateway's own; the global one is left alone)."""
        self._tracer = provider.get_tracer("garrison.gateway")
        self._trace = trace
        self._empty = Context
        self._propagator = TraceContextTextMapPropagator()

    # -- request span --------------------------------------------------------------------------

    async def handle(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` on one HTTP request inside the request's server span."""
        parent = self._incoming(scope) if self.config.continue_incoming else self._empty()
        method = str(scope.get("method", ""))
        with self._tracer.start_as_current_span(
            method,
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if not span.is_recording():  # sampled out: the context still propagates
                await app(scope, receive, send)
                return
            status = 0

            async def send_traced(message: MutableMapping[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_traced)
            except BaseException as exc:
                span.set_status(self._trace.StatusCode.ERROR, type(exc).__name__)
                raise
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(self._trace.StatusCode.ERROR)

    def _incoming(self, scope: Scope) -> Any:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        return self._propagator.extract(carrier)

    def annotate(self, facts: RequestFacts, *, status: int, request_id: str) -> None:
        """Put what the pipeline decided on the current request span (called when it is audited)."""
        span = self._trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, str | int | float | list[str]] = {
            "garrison.request_id": request_id,
            "http.response.status_code": status,
        }
        if facts.route:
            attributes["garrison.route"] = facts.route
            span.update_name(f"{facts.method} {facts.route}")
        if facts.model:
            attributes["garrison.model"] = facts.model
        if facts.principal is not None:
            attributes["garrison.principal.id"] = facts.principal.id
            attributes["garrison.principal.kind"] = facts.principal.kind
        denied = next((d for d in reversed(facts.decisions) if d.outcome is Outcome.DENY), None)
        attributes["garrison.decision"] = "deny" if denied is not None else "allow"
        if denied is not None:
            attributes["garrison.denied.step"] = denied.step
            attributes["garrison.denied.reason"] = denied.reason
        flagged = [d.step for d in facts.decisions if d.outcome is Outcome.FLAG]
        if flagged:
            attributes["garrison.flagged_steps"] = flagged
        for decision in facts.decisions:
            if decision.step == "upstream":
                attributes["garrison.upstream_ms"] = decision.ms
        span.set_attributes(attributes)

    # -- step spans and propagation ------------------------------------------------------------

    def step_span(self, name: str) -> Any | None:
        """A started child span of the current request span; None when that one is not recorded (sampled
        out, or no request span) or ``step_spans`` is off. The caller ends it; it is never made current,
        which keeps a step's cost to starting and ending one span."""
        if not self.config.step_spans or not self._trace.get_current_span().is_recording():
            return None
        return self._tracer.start_span(name)

    def failed(self, span: Any, exc: BaseException) -> None:
        """Record on a step's span why it stopped: a denial (not an error) or an error (its type only:
        a message may hold request data)."""
        if isinstance(exc, Denied):
            span.set_attributes({"garrison.outcome": "deny", "garrison.reason": exc.reason})
        else:
            span.set_status(self._trace.StatusCode.ERROR, type(exc).__name__)

    def upstream_headers(self) -> list[tuple[bytes, bytes]]:
        """``traceparent`` (and ``tracestate``) naming the current span, for the upstream request."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in carrier.items()]

    def flush(self) -> None:
        """Export what is buffered (at shutdown; the provider itself shuts down when the process exits)."""
        self.provider.force_flush(5_000)


def traced_subclass(base: type[T]) -> type[T]:
    """A subclass of ``base`` whose :data:`TRACED_STEPS` methods run in child spans of ``self.tracing``.

    The spans are methods of the class, not wrappers stored on an instance, so a copy of an instance
    (the admin API's live reload copies the components) traces its own state.
    """
    namespace = {name: _traced(getattr(base, name), f"garrison.{step}") for name, step in TRACED_STEPS}
    return type(f"Traced{base.__name__}", (base,), namespace)


def _traced(function: Callable[..., Any], span_name: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def traced_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            tracing: Tracing = self.tracing
            span = tracing.step_span(span_name)
            if span is None:
                return await function(self, *args, **kwargs)
            try:
                return await function(self, *args, **kwargs)
            except BaseException as exc:
                tracing.failed(span, exc)
                raise
            finally:
                span.end()

        return traced_async

    @functools.wraps(function)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        tracing: Tracing = self.tracing
        span = tracing.step_span(span_name)
        if span is None:
            return function(self, *args, **kwargs)
        try:
            return function(self, *args, **kwargs)
        except BaseException as exc:
            tracing.failed(span, exc)
            raise
        finally:
            span.end()

    return traced


class TracingMiddleware:
    """Pure ASGI middleware: one server span per HTTP request that ``is_public`` does not exempt."""

    def __init__(self, app: App, tracing: Tracing, *, is_public: Callable[[str, str], bool]) -> None:
        self.app = app
        """The wrapped application (the gateway)."""
        self.tracing = tracing
        self._is_public = is_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope["path"], scope["method"]):
            await self.app(scope, receive, send)
            return
        await self.tracing.handle(self.app, scope, receive, send)


_SHARED: dict[TracingConfig, Tracing] = {}


def tracing_for(config: TracingConfig) -> Tracing | None:
    """The process's :class:`Tracing` for ``config`` (one provider per configuration), None when off."""
    if not config.enabled:
        return None
    found = _SHARED.get(config)
    if found is None:
        found = _SHARED[config] = Tracing(config)
    return found
