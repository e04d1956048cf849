"""Routes: which requests the gateway accepts, where it sends them, and what it reads from them.

A route is matched by method and exact path, or by a prefix ending in ``/*``. Its ``kind`` says how
the body is read: the model name the caller asked for (for authorization), the text an input filter
must see, and the most tokens the request may use (for budgets).

- ``openai``: OpenAI-compatible ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``;
  the model is ``body.model``; streaming (``"stream": true``) is passed through as SSE.
- ``kserve``: the KServe v2 inference protocol, ``/v2/models/{name}/infer``; the model is ``{name}``.
- ``json``: any JSON model server; the model is the route's ``model``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from garrison.gateway.extraction import ExtractionConfig
from garrison.gateway.guardrails import GuardrailsConfig
from garrison.gateway.local_models import LocalModelConfig
from garrison.gateway.output_controls import OutputPolicy
from garrison.gateway.validate import ValidationConfig

RouteKind = Literal["openai", "kserve", "json", "local"]

_KSERVE_PATH = re.compile(
    r"^/v2/models/(?P<name>[A-Za-z0-9._-]{1,128})(?:/versions/[A-Za-z0-9._-]{1,64})?/infer$"
)


class InputFilterConfig(BaseModel):
    """Regular expressions a request's text must not match (case-insensitive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deny: tuple[str, ...] = Field(default=(), description="Patterns that block the request.")
    flag: tuple[str, ...] = Field(default=(), description="Patterns that only mark it in the audit log.")

    @field_validator("deny", "flag")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return patterns


class PricingConfig(BaseModel):
    """What one token costs, for cost budgets (any currency; budgets use the same unit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_per_1k: float = Field(default=0.0, ge=0)
    completion_per_1k: float = Field(default=0.0, ge=0)


class RouteConfig(BaseModel):
    """One route (``routes:`` in gateway.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Used by roles and limits.")
    path: str = Field(description="Exact path, or a prefix ending in /* .")
    methods: tuple[str, ...] = ("POST",)
    kind: RouteKind = "json"
    upstream: str = Field(default="", description="http://host:port[/prefix] of the model server.")
    local: LocalModelConfig | None = Field(
        default=None, description="kind local: the model file, loaded after its signature and scan check out."
    )
    upstream_path: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="Path called on the upstream (after its URL prefix); default: the request's path.",
    )
    upstream_headers: Mapping[str, str] = Field(
        default_factory=dict,
        description="Headers sent upstream (for example the provider's API key, as ${ENV_VAR}).",
    )
    model: str = Field(default="", description="Model name for authorization when the body has none.")
    action: str = "invoke"
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_tokens_default: int = Field(
        default=4096, ge=1, description="Tokens reserved when an LLM request names no max_tokens."
    )
    max_tokens_cap: int = Field(default=32768, ge=1, description="Largest max_tokens a request may ask for.")
    pricing: PricingConfig = PricingConfig()
    input_filters: InputFilterConfig = InputFilterConfig()
    validation: ValidationConfig = ValidationConfig()
    guardrails: GuardrailsConfig | None = Field(
        default=None, description="LLM input and output scanners on an OpenAI-compatible route."
    )
    extraction: ExtractionConfig | None = Field(
        default=None, description="Model-extraction monitor for this ML route (PRADA, volume, coverage)."
    )
    output: Mapping[str, OutputPolicy] = Field(
        default_factory=dict,
        description="Output controls by role (label, top_k, round); '*' for every other role. "
        "Unset: responses pass unchanged.",
    )

    @model_validator(mode="after")
    def _target(self) -> RouteConfig:
        if self.kind == "local":
            if self.local is None or self.upstream:
                raise ValueError(
                    f"route {self.name!r}: kind local needs local: {{path: ...}} and no upstream"
                )
            if self.validation.features is None:
                raise ValueError(
                    f"route {self.name!r}: a local model needs validation.features to read its inputs"
                )
        elif not self.upstream or self.local is not None:
            raise ValueError(
                f"route {self.name!r}: kind {self.kind} needs an upstream URL (and no local model)"
            )
        return self

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        if not path.startswith("/") or "//" in path or "/../" in path or path.endswith("/.."):
            raise ValueError(f"route path {path!r} must be an absolute, normalised path")
        return path

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"GET", "POST", "PUT", "PATCH", "DELETE"}
        upper = tuple(m.upper() for m in methods)
        bad = [m for m in upper if m not in allowed]
        if bad:
            raise ValueError(f"unsupported methods {bad}; use {sorted(allowed)}")
        return upper


@dataclass(frozen=True, slots=True)
class Match:
    """A request matched to a route."""

    route: RouteConfig
    model: str
    """Model named by the path (KServe); the body may name another for OpenAI routes."""


class Router:
    """Exact paths in a dict, prefixes in order of length (longest first)."""

    def __init__(self, routes: tuple[RouteConfig, ...]) -> None:
        self._exact: dict[str, RouteConfig] = {}
        self._prefixes: list[tuple[str, RouteConfig]] = []
        for route in routes:
            if route.path.endswith("/*"):
                self._prefixes.append((route.path[:-1], route))
            else:
                self._exact[route.path] = route
        self._prefixes.sort(key=lambda item: -len(item[0]))

    def match(self, path: str) -> Match | None:
        """The route for ``path``, or None. ``path`` must already be normalised by the caller."""
        route = self._exact.get(path)
        if route is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    route = candidate
                    break
        if route is None:
            return None
        model = route.model
        if route.kind == "kserve":
            found = _KSERVE_PATH.match(path)
            if found:
                model = found.group("name")
        return Match(route=route, model=model)


def body_model(kind: RouteKind, body: Any, default: str) -> str:
    """The model a request body names (OpenAI routes), else ``default``."""
    if kind == "openai" and isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str):
            return model
    return default


def requested_max_tokens(route: RouteConfig, body: Any) -> int:
    """Tokens to reserve for an LLM request: its ``max_tokens`` (capped) plus a prompt estimate."""
    if route.kind != "openai" or not isinstance(body, dict):
        return 0
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    completion = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 0
    completion = min(completion or route.max_tokens_default, route.max_tokens_cap)
    prompt = sum(len(text) for text in request_texts("openai", body)) // 3 + 8
    return completion + prompt


def usage_tokens(body: Any) -> int | None:
    """``usage.total_tokens`` from an OpenAI-compatible response, if it has one."""
    if isinstance(body, dict):
        usage = body.get("usage")
        if isinstance(usage, dict):
            total = usage.get("total_tokens")
            if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
                return total
    return None


def request_texts(kind: RouteKind, body: Any) -> Iterator[str]:
    """Every piece of caller text in a request body that input filters must read."""
    if not isinstance(body, dict):
        return
    if kind == "openai":
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    yield from _content_texts(message.get("content"))
        for key in ("prompt", "input", "suffix"):
            yield from _content_texts(body.get(key))
    else:
        yield from _strings(body, depth=0)


def _content_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def _strings(value: Any, depth: int) -> Iterator[str]:
    if depth > 64:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)
