"""The ``limits_backend`` and ``limits`` sections of the gateway's YAML configuration.

Example::

    limits_backend:
      type: redis                 # memory (one worker) | sqlite (workers on one host) | redis (a fleet)
      url: redis://limits:6379/0
      on_backend_error: closed    # closed: deny with 503 | open: admit and mark the decision fail_open
      lease_seconds: 300          # a reservation never settled stops counting after this
    limits:
      - name: free-tier
        per: key                  # key | role | route | global
        match: {routes: ["chat*"], roles: [free]}
        requests: {limit: 60, window: 60s}
        concurrent: 4
        tokens: {limit: 200000, window: 1d}
        cost: {limit: 5.0, window: 1d, reserve: 0.05}

Durations are numbers of seconds or strings such as ``500ms``, ``60s``, ``15m``, ``1h``, ``1d``.
A budget's window of ``0`` (the default) never resets: a total budget.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number, or a string such as ``"500ms"``, ``"60s"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '60s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(
            f"{value!r} is not a duration; write a number of seconds or e.g. '500ms', '60s', '1h'"
        )
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, parsed by :func:`parse_duration`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsBackendConfig(_Model):
    """Where the counters live and what happens when that place is unreachable."""

    type: Literal["memory", "sqlite", "redis"] = Field(
        default="memory",
        description="memory: one worker process; sqlite: several workers on one host; redis: a fleet.",
    )
    path: str = Field(default="", description="SQLite file (type sqlite).")
    url: str = Field(default="", description="redis:// or rediss:// URL (type redis).")
    on_backend_error: Literal["closed", "open"] = Field(
        default="closed",
        description="closed: deny with 503 when the backend fails; open: admit and record fail_open.",
    )
    lease_seconds: Duration = Field(
        default=300.0,
        gt=0,
        description="A reservation never settled (a worker crashed) stops holding a concurrency slot "
        "after this; settling later than this is a no-op.",
    )
    key_prefix: str = Field(default="garrison:limits:", description="Prefix of every counter's key.")
    timeout: Duration = Field(default=0.5, gt=0, description="Per-call timeout for the redis backend.")

    @model_validator(mode="after")
    def _needs_location(self) -> LimitsBackendConfig:
        if self.type == "sqlite" and not self.path:
            raise ValueError("limits_backend type sqlite needs a path")
        if self.type == "redis" and not self.url:
            raise ValueError("limits_backend type redis needs a url")
        return self


class LimitMatch(_Model):
    """Which requests a limit applies to. An empty list matches everything."""

    routes: tuple[str, ...] = Field(default=(), description="Route names or shell-style patterns (chat*).")
    roles: tuple[str, ...] = Field(default=(), description="The caller has at least one of these roles.")


class RequestsLimit(_Model):
    """At most ``limit`` requests per ``window`` (GCRA: evenly refilled, a burst of ``limit`` allowed)."""

    limit: int = Field(gt=0)
    window: Duration = Field(gt=0)


class BudgetLimit(_Model):
    """At most ``limit`` tokens or cost units per ``window`` (0: a total that never resets)."""

    limit: float = Field(gt=0)
    window: Duration = 0.0
    reserve: float | None = Field(
        default=None,
        gt=0,
        description="Amount reserved when a request states no maximum. Unset: the whole limit, so "
        "such requests run one at a time; set it to the largest request you expect.",
    )


class LimitRule(_Model):
    """One named limit: which counters (``per``), which requests (``match``), and what it bounds."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    per: Literal["key", "role", "route", "global"] = "key"
    match: LimitMatch = LimitMatch()
    requests: RequestsLimit | None = None
    concurrent: int | None = Field(default=None, gt=0)
    tokens: BudgetLimit | None = None
    cost: BudgetLimit | None = None

    @model_validator(mode="after")
    def _bounds_something(self) -> LimitRule:
        if self.requests is None and self.concurrent is None and self.tokens is None and self.cost is None:
            raise ValueError(f"limit {self.name!r} sets none of requests, concurrent, tokens, cost")
        return self


class LimitsSection(_Model):
    """The two top-level keys the limits step reads."""

    limits_backend: LimitsBackendConfig = LimitsBackendConfig()
    limits: tuple[LimitRule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> LimitsSection:
        seen: set[str] = set()
        for rule in self.limits:
            if rule.name in seen:
                raise ValueError(f"two limits are named {rule.name!r}; names must be unique")
            seen.add(rule.name)
        return self
