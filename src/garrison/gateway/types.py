"""Values every pipeline step shares: who is asking, what a step decided, and how a request is denied."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """What a step decided."""

    ALLOW = "allow"
    DENY = "deny"
    REDACT = "redact"
    FLAG = "flag"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller. ``id`` is safe to log: a key id or a JWT subject, never a secret."""

    id: str
    """``key_<id>`` for API keys, ``jwt:<issuer>#<subject>`` for bearer tokens."""
    kind: str
    """``api_key``, ``jwt`` or ``mtls``."""
    roles: frozenset[str] = frozenset()
    """Roles granted, after mapping claims or groups."""
    scopes: frozenset[str] = frozenset()
    """Scopes the credential is limited to (empty: whatever its roles allow)."""
    name: str = ""
    """Human label (the key's name, the token's subject)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One step's decision about one request; the audit event lists them in order."""

    step: str
    """``auth``, ``authz``, ``limits``, ``validate``, ``input.<scanner>``, ``upstream``, ``output``."""
    outcome: Outcome
    reason: str = ""
    """Machine-readable cause, for the audit log and metrics (never shown to the caller)."""
    ms: float = 0.0
    """Time the step took."""


class Denied(Exception):  # noqa: N818 - a decision, not an error
    """Raised by a step to stop a request.

    ``status`` and ``public`` are all the caller ever sees; ``reason`` goes only to the audit log
    and metrics. A 401 never echoes the key, its hash or an internal name.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        public: str = "",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.public = public or _PUBLIC.get(status, "request denied")
        self.headers = headers


_PUBLIC = {
    400: "bad request",
    401: "authentication required",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    408: "request timeout",
    413: "request body too large",
    415: "unsupported media type",
    422: "request does not match the route's schema",
    429: "rate limit exceeded",
    502: "upstream error",
    503: "service unavailable",
    504: "upstream timeout",
}


@dataclass(slots=True, kw_only=True)
class RequestFacts:
    """What the pipeline learned about a request so far, read by later steps and the audit event."""

    method: str
    path: str
    client_ip: str
    route: str = ""
    model: str = ""
    action: str = ""
    principal: Principal | None = None
    decisions: list[Decision] = field(default_factory=list)
