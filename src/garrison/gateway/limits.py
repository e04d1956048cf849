"""Rate limits and budgets: reserve before a request runs, settle after.

A request turns into a set of :class:`Charge` s, one per counter that applies to it. The backend
reserves all of them in one atomic step or none at all, so parallel requests can never overspend: a
budget is charged the request's *maximum* (``max_tokens``, the most it can cost) before the request
is admitted, and :meth:`LimitBackend.settle` refunds ``maximum - actual`` afterwards. Counters live in a
backend: :class:`MemoryBackend` (one worker), ``limits_sqlite.SQLiteBackend`` (several workers on one
host), ``limits_redis.RedisBackend`` (a fleet). All three implement the same arithmetic, below.

Algorithms
----------
RATE (requests per window)
    GCRA, the generic cell rate algorithm. A limit of ``L`` per ``W`` seconds emits one request every
    ``T = W / L`` seconds and tolerates a burst of ``L``. The only state is the *theoretical arrival
    time* ``tat``. A request is admitted when ``max(tat, now) + T - now <= W``; then ``tat`` moves on by
    ``T``. When denied, ``retry_after`` is exactly the time until that inequality holds. ``remaining``
    is how many more requests would be admitted right now, ``reset`` the time until the full burst is
    available again. No refunds: a request that ran was a request.
CONCURRENCY (in flight)
    A set of leases, one per admitted request, each expiring ``lease_s`` after it was taken. Settle
    removes the lease; a lease whose worker crashed stops counting when it expires. ``retry_after``
    is one second: a slot frees whenever some request finishes.
TOKENS, COST (budgets)
    Fixed windows aligned on the epoch (``window = 1d`` resets at 00:00 UTC), or no window at all for
    a total budget. A budget admits a request when ``used + amount <= limit`` and the budget is not
    already spent; settle subtracts ``reserved - actual`` if the reservation's window is still the
    current one (a refund into a window that has rolled over is dropped; the new window never saw
    the charge). An actual greater than the reservation is charged in full: the books stay true.
    ``retry_after`` is the time to the window's end, or ``inf`` for a total budget (the limiter
    caps ``Retry-After`` at one day).

Settling is idempotent: each reservation leaves a *pending* marker (which lives ``lease_s``) and only
the settle that removes it changes any counter. A settle later than ``lease_s`` is therefore a no-op:
the maximum stays charged, which errs on the safe side. A reservation made only of RATE charges has
nothing to give back: it leaves no marker and its settle costs nothing (no round trip).

Clocks: the memory and SQLite backends use this host's ``time.time()``; Redis uses the Redis server's
``TIME`` so that a fleet shares one clock.

Headers
-------
Every response a limit applies to carries ``RateLimit-Policy`` and ``RateLimit``
(draft-ietf-httpapi-ratelimit-headers-10): one item per counter, named ``<limit>.<kind>`` (with the
role for ``per: role``), e.g. ``"free.requests";q=60;w=60`` and ``"free.requests";r=59;t=1``.
Concurrency uses ``qu="concurrency"``; token budgets ``qu="tokens"``; cost budgets
``qu="cost-micros"`` with ``q`` and ``r`` in millionths of the configured unit (structured-field
integers cannot carry 0.25). A 429 adds ``Retry-After`` (whole seconds, at least 1) and reports only
the counter that was full.

Backend failure
---------------
``on_backend_error: closed`` (the default) denies with 503 ``limits_backend_down``: an unreachable
Redis or an unusable SQLite file must not turn every limit off. ``open`` admits the request without
a reservation and marks the admission ``fail_open`` for the audit log and metrics; choose it only
where availability matters more than budgets. A failed settle never fails the request: the maximum
stays charged and concurrency slots come back when their lease ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Protocol

from garrison.core.errors import GarrisonError
from garrison.gateway.ids import ProcessIds
from garrison.gateway.limits_config import BudgetLimit, LimitRule, LimitsBackendConfig, LimitsSection
from garrison.gateway.types import Denied

EPSILON = 1e-9
"""Relative slack in comparisons, so that ``L`` requests at one instant fit a limit of ``L``."""
MAX_RETRY_AFTER_S = 86400
"""``Retry-After`` for a spent total budget (which never resets on its own): one day."""

log = logging.getLogger("garrison.gateway.limits")


class LimitKind(StrEnum):
    """What a counter bounds."""

    RATE = "requests"
    CONCURRENCY = "concurrent"
    TOKENS = "tokens"
    COST = "cost"


BUDGETS = frozenset({LimitKind.TOKENS, LimitKind.COST})


@dataclass(frozen=True, slots=True, kw_only=True)
class Charge:
    """One counter a request draws on, and how much."""

    key: str
    """Counter key, unique per limit, kind and scope (``free.requests.key=key_abc``)."""
    kind: LimitKind
    limit: float
    """Requests per window, requests in flight, or the budget."""
    window_s: float
    """Window length in seconds; 0 for a budget that never resets (and for CONCURRENCY)."""
    amount: float = 1.0
    """1 for RATE and CONCURRENCY; the request's maximum for TOKENS and COST."""
    policy: str = ""
    """Name shown in the ``RateLimit-Policy`` and ``RateLimit`` headers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """A counter's state right after a reservation: for the ``RateLimit`` header."""

    remaining: float
    """What is left: requests, slots, tokens or cost units."""
    reset_s: float
    """Seconds until the counter is back to full (``inf``: never; 0: no window)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """What an admitted request holds, and what :meth:`LimitBackend.settle` needs to release it."""

    id: str
    """Random id; names the concurrency leases and the pending marker."""
    charges: tuple[Charge, ...]
    windows: tuple[float, ...]
    """Per charge: start of the budget window the amount was charged to (0 when not a windowed budget)."""
    quotas: tuple[Quota, ...]
    """Per charge: the counter's state after this reservation."""


class LimitExceeded(Exception):  # noqa: N818 - an outcome, not a malfunction
    """A reservation was refused: ``charge`` is the first counter that had no room."""

    def __init__(self, charge: Charge, *, remaining: float, reset_s: float, retry_after_s: float) -> None:
        super().__init__(f"limit {charge.key} ({charge.kind.value}, {charge.limit:g}) exceeded")
        self.charge = charge
        self.key = charge.key
        self.limit = charge.limit
        self.remaining = remaining
        self.reset_s = reset_s
        self.retry_after_s = retry_after_s


class LimitsBackendError(GarrisonError):
    """The limits backend could not be reached or failed; the limiter applies ``on_backend_error``."""

    exit_code = 2


class LimitBackend(Protocol):
    """Where counters live. Every implementation is safe under concurrent callers."""

    async def reserve(self, charges: Sequence[Charge]) -> Reservation:
        """Reserve every charge or none. Raises :class:`LimitExceeded` or :class:`LimitsBackendError`."""
        ...

    async def settle(self, reservation: Reservation, actual: Mapping[str, float] | None = None) -> None:
        """Release concurrency, refund ``amount - actual[key]`` on budgets (``None``: charge the maximum).

        Idempotent; raises :class:`LimitsBackendError`.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def needs_settle(charges: Sequence[Charge]) -> bool:
    """Whether settling changes anything: False when every charge is a RATE (nothing to give back).

    Backends skip the pending marker and the settle round trip for such reservations.
    """
    return any(c.kind is not LimitKind.RATE for c in charges)


_reservation_ids = ProcessIds(prefix_bytes=8, counter_digits=8)


def new_reservation_id() -> str:
    """A unique id for a reservation."""
    return _reservation_ids.next()


# --- the arithmetic every backend shares (the Lua script in limits_redis mirrors it) ---------------


def gcra(tat: float, now: float, charge: Charge) -> tuple[bool, float, float, float, float]:
    """GCRA step: ``(admitted, new_tat, remaining, reset_s, retry_after_s)``; ``tat`` 0 = unseen."""
    window = charge.window_s
    interval = window / charge.limit
    base = max(tat, now)
    new_tat = base + interval * charge.amount
    slack = window * EPSILON
    if new_tat - now <= window + slack:
        remaining = math.floor((window - (new_tat - now)) / interval + EPSILON)
        return True, new_tat, float(remaining), new_tat - now, 0.0
    remaining = max(0, math.floor((window - (base - now)) / interval + EPSILON))
    return False, tat, float(remaining), base - now, new_tat - window - now


def budget(
    start: float, used: float, now: float, charge: Charge
) -> tuple[bool, float, float, float, float, float]:
    """Budget step: ``(admitted, window_start, new_used, remaining, reset_s, retry_after_s)``."""
    if charge.window_s > 0:
        current = math.floor(now / charge.window_s) * charge.window_s
        if start != current:
            used = 0.0
        reset = current + charge.window_s - now
    else:
        current, reset = 0.0, math.inf
    after = used + charge.amount
    if used < charge.limit and after <= charge.limit * (1 + EPSILON):
        return True, current, after, max(0.0, charge.limit - after), reset, 0.0
    retry = reset if charge.amount <= charge.limit else math.inf
    return False, current, used, max(0.0, charge.limit - used), reset, retry


def refund(reserved: float, actual: Mapping[str, float] | None, key: str) -> float:
    """How much to take back off a budget: ``reserved - actual`` (negative when actual is larger)."""
    if actual is None or key not in actual:
        return 0.0
    return reserved - max(0.0, float(actual[key]))


# --- in-process backend ------------------------------------------------------------------------------


class MemoryBackend:
    """Counters in this process's memory: exact and fast, but each worker process has its own."""

    _SWEEP_EVERY = 4096

    def __init__(self, *, lease_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self._lease_s = lease_s
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._budgets: dict[str, tuple[float, float]] = {}
        # Per key, leases in the order they were taken: with a fixed lease length that is also the
        # order they expire in, so expired ones are popped from the front in O(1) each.
        self._leases: dict[str, OrderedDict[str, float]] = {}
        self._pending: dict[str, float] = {}
        self._ops = 0

    async def reserve(self, charges: Sequence[Charge]) -> Reservation:
        """See :meth:`LimitBackend.reserve`. Runs without awaiting, so it is atomic on the event loop."""
        now = self._clock()
        self._ops += 1
        if self._ops % self._SWEEP_EVERY == 0:
            self._sweep(now)
        rid = new_reservation_id()
        windows: list[float] = []
        quotas: list[Quota] = []
        updates: list[tuple[Charge, float, float]] = []
        for charge in charges:
            kind = charge.kind
            if kind is LimitKind.RATE:
                ok, tat, remaining, reset, retry = gcra(self._tat.get(charge.key, 0.0), now, charge)
                windows.append(0.0)
                updates.append((charge, tat, 0.0))
            elif kind is LimitKind.CONCURRENCY:
                held = self._live_leases(charge.key, now)
                ok = held + charge.amount <= charge.limit
                remaining, reset, retry = (
                    max(0.0, charge.limit - held - (charge.amount if ok else 0)),
                    0.0,
                    1.0,
                )
                windows.append(0.0)
                updates.append((charge, 0.0, 0.0))
            else:
                start, used = self._budgets.get(charge.key, (0.0, 0.0))
                ok, start, used, remaining, reset, retry = budget(start, used, now, charge)
                windows.append(start)
                updates.append((charge, start, used))
            if not ok:
                raise LimitExceeded(charge, remaining=remaining, reset_s=reset, retry_after_s=retry)
            quotas.append(Quota(remaining=remaining, reset_s=reset))
        expires = now + self._lease_s
        for charge, a, b in updates:
            if charge.kind is LimitKind.RATE:
                self._tat[charge.key] = a
            elif charge.kind is LimitKind.CONCURRENCY:
                leases = self._leases.get(charge.key)
                if leases is None:
                    leases = self._leases[charge.key] = OrderedDict()
                leases[rid] = expires
            else:
                self._budgets[charge.key] = (a, b)
        if needs_settle(charges):
            self._pending[rid] = expires
        return Reservation(id=rid, charges=tuple(charges), windows=tuple(windows), quotas=tuple(quotas))

    async def settle(self, reservation: Reservation, actual: Mapping[str, float] | None = None) -> None:
        """See :meth:`LimitBackend.settle`."""
        now = self._clock()
        expires = self._pending.pop(reservation.id, None)
        if expires is None or expires <= now:
            return
        for charge, start in zip(reservation.charges, reservation.windows, strict=True):
            if charge.kind is LimitKind.CONCURRENCY:
                leases = self._leases.get(charge.key)
                if leases is not None:
                    leases.pop(reservation.id, None)
            elif charge.kind in BUDGETS:
                back = refund(charge.amount, actual, charge.key)
                current = self._budgets.get(charge.key)
                if back and current is not None and current[0] == start:
                    self._budgets[charge.key] = (start, max(0.0, current[1] - back))

    async def close(self) -> None:
        """Nothing to release."""

    def _live_leases(self, key: str, now: float) -> int:
        leases = self._leases.get(key)
        if not leases:
            return 0
        while leases and leases[next(iter(leases))] <= now:
            leases.popitem(last=False)
        return len(leases)

    def _sweep(self, now: float) -> None:
        """Forget state that no longer matters, so memory stays bounded by live callers."""
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._pending = {k: v for k, v in self._pending.items() if v > now}
        for key in [k for k in self._leases if self._live_leases(k, now) == 0]:
            del self._leases[key]


def open_backend(config: LimitsBackendConfig) -> LimitBackend:
    """The backend ``config`` names (SQLite and Redis are imported only when used)."""
    if config.type == "sqlite":
        from garrison.gateway.limits_sqlite import SQLiteBackend

        return SQLiteBackend(config.path, lease_s=config.lease_seconds)
    if config.type == "redis":
        from garrison.gateway.limits_redis import RedisBackend

        return RedisBackend(
            config.url, lease_s=config.lease_seconds, prefix=config.key_prefix, timeout_s=config.timeout
        )
    return MemoryBackend(lease_s=config.lease_seconds)


# --- the limiter: config + request -> charges -> decision and headers --------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """An admitted request: what to settle and which headers to send."""

    reservation: Reservation | None
    """None when no limit applied, or when the backend failed and ``on_backend_error`` is open."""
    headers: tuple[tuple[str, str], ...]
    """``RateLimit-Policy`` and ``RateLimit`` (empty when no limit applied)."""
    fail_open: bool = False
    """The backend failed and the request was admitted anyway; record it on the decision."""


_UNIT = {LimitKind.CONCURRENCY: ';qu="concurrency"', LimitKind.TOKENS: ';qu="tokens"'}
_COST_SCALE = 1_000_000


def _sf_int(value: float, kind: LimitKind) -> int:
    """Header integers: cost is shown in millionths (``qu="cost-micros"``), everything else floored."""
    if kind is LimitKind.COST:
        return max(0, math.floor(value * _COST_SCALE + 1e-6))
    return max(0, math.floor(value + 1e-9))


def _policy_item(charge: Charge) -> str:
    unit = ';qu="cost-micros"' if charge.kind is LimitKind.COST else _UNIT.get(charge.kind, "")
    window = f";w={max(1, math.ceil(charge.window_s))}" if charge.window_s > 0 else ""
    return f'"{charge.policy}";q={_sf_int(charge.limit, charge.kind)}{window}{unit}'


def _ratelimit_item(charge: Charge, remaining: float, reset_s: float) -> str:
    item = f'"{charge.policy}";r={_sf_int(remaining, charge.kind)}'
    if charge.window_s > 0 and math.isfinite(reset_s):
        item += f";t={max(0, math.ceil(reset_s))}"
    return item


def ratelimit_headers(charges: Sequence[Charge], quotas: Sequence[Quota]) -> tuple[tuple[str, str], ...]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-10) for ``charges``."""
    if not charges:
        return ()
    return (
        ("RateLimit-Policy", ", ".join(_policy_item(c) for c in charges)),
        (
            "RateLimit",
            ", ".join(
                _ratelimit_item(c, q.remaining, q.reset_s) for c, q in zip(charges, quotas, strict=True)
            ),
        ),
    )


def denial_headers(charges: Sequence[Charge], exceeded: LimitExceeded) -> tuple[tuple[str, str], ...]:
    """``Retry-After`` (whole seconds, at least 1) plus the policies and the counter that was full."""
    retry = exceeded.retry_after_s
    seconds = (
        MAX_RETRY_AFTER_S if not math.isfinite(retry) else min(MAX_RETRY_AFTER_S, max(1, math.ceil(retry)))
    )
    return (
        ("Retry-After", str(seconds)),
        ("RateLimit-Policy", ", ".join(_policy_item(c) for c in charges)),
        ("RateLimit", _ratelimit_item(exceeded.charge, exceeded.remaining, exceeded.reset_s)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What the limiter works out once per (caller, route, roles, maximums)."""

    charges: tuple[Charge, ...]
    policy: str
    """The ``RateLimit-Policy`` value."""
    items: tuple[tuple[str, int, bool], ...]
    """Per charge, for the ``RateLimit`` value: ``'"name";r='``, the scale of ``r``, whether to add ``t``."""


_REASON = {
    LimitKind.RATE: "rate_limited",
    LimitKind.CONCURRENCY: "concurrency_limited",
    LimitKind.TOKENS: "token_budget_exceeded",
    LimitKind.COST: "cost_budget_exceeded",
}


class Limiter:
    """Turns the configured limits and one request into charges, reserves them, and renders headers."""

    _PLAN_CACHE = 10_000

    def __init__(self, rules: Sequence[LimitRule], backend: LimitBackend, *, fail_open: bool = False) -> None:
        self.rules = tuple(rules)
        self.backend = backend
        self.fail_open = fail_open
        self._by_route: dict[str, tuple[LimitRule, ...]] = {}
        self._plans: dict[tuple[object, ...], _Plan] = {}

    @classmethod
    def from_config(cls, section: LimitsSection) -> Limiter:
        """A limiter over the backend ``section.limits_backend`` names."""
        backend = open_backend(section.limits_backend)
        return cls(section.limits, backend, fail_open=section.limits_backend.on_backend_error == "open")

    def charges(
        self,
        *,
        principal_id: str,
        roles: Iterable[str],
        route: str,
        max_tokens: float | None = None,
        max_cost: float | None = None,
    ) -> tuple[Charge, ...]:
        """Every charge this request makes, in configuration order."""
        rules = self._by_route.get(route)
        if rules is None:
            rules = tuple(
                r
                for r in self.rules
                if not r.match.routes or any(fnmatchcase(route, p) for p in r.match.routes)
            )
            if len(self._by_route) >= self._PLAN_CACHE:
                self._by_route.clear()
            self._by_route[route] = rules
        if not rules:
            return ()
        role_set = roles if isinstance(roles, frozenset | set) else frozenset(roles)
        out: list[Charge] = []
        for rule in rules:
            wanted = rule.match.roles
            if wanted and role_set.isdisjoint(wanted):
                continue
            if rule.per == "role":
                scopes = sorted(role_set.intersection(wanted) if wanted else role_set)
                tags = [f"role={s}" for s in scopes]
                names = [f"{rule.name}.{s}" for s in scopes]
            else:
                scope = {"key": principal_id, "route": route, "global": "*"}[rule.per]
                tags, names = [f"{rule.per}={scope}"], [rule.name]
            for tag, name in zip(tags, names, strict=True):
                out.extend(_rule_charges(rule, tag, name, max_tokens, max_cost))
        return tuple(out)

    async def admit(
        self,
        *,
        principal_id: str,
        roles: Iterable[str],
        route: str,
        max_tokens: float | None = None,
        max_cost: float | None = None,
    ) -> Admission:
        """Reserve what this request may use, or raise :class:`~garrison.gateway.types.Denied`.

        429 (reason ``rate_limited``, ``concurrency_limited``, ``token_budget_exceeded`` or
        ``cost_budget_exceeded``) with ``Retry-After`` and RateLimit headers; 503
        ``limits_backend_down`` when the backend fails and ``on_backend_error`` is closed.
        """
        role_set = roles if isinstance(roles, frozenset) else frozenset(roles)
        # The charges and the policy header of a (caller, route, maximums) repeat from request to
        # request: build them once. The cache is bounded and simply starts over when full.
        plan_key = (principal_id, route, role_set, max_tokens, max_cost)
        plan = self._plans.get(plan_key)
        if plan is None:
            charges = self.charges(
                principal_id=principal_id,
                roles=role_set,
                route=route,
                max_tokens=max_tokens,
                max_cost=max_cost,
            )
            plan = _Plan(
                charges=charges,
                policy=", ".join(_policy_item(c) for c in charges),
                items=tuple(
                    (f'"{c.policy}";r=', _COST_SCALE if c.kind is LimitKind.COST else 1, c.window_s > 0)
                    for c in charges
                ),
            )
            if len(self._plans) >= self._PLAN_CACHE:
                self._plans.clear()
            self._plans[plan_key] = plan
        charges = plan.charges
        if not charges:
            return Admission(reservation=None, headers=())
        try:
            reservation = await self.backend.reserve(charges)
        except LimitExceeded as exceeded:
            raise Denied(
                429, _REASON[exceeded.charge.kind], headers=denial_headers(charges, exceeded)
            ) from None
        except LimitsBackendError as exc:
            outcome = "admitted (fail open)" if self.fail_open else "denied"
            log.warning("limits backend failed, request %s: %s", outcome, exc.message)
            if self.fail_open:
                return Admission(reservation=None, headers=(), fail_open=True)
            raise Denied(503, "limits_backend_down") from None
        parts = []
        for (head, scale, windowed), quota in zip(plan.items, reservation.quotas, strict=True):
            left = int(quota.remaining * scale + 1e-6)
            reset = quota.reset_s
            parts.append(
                f"{head}{left};t={math.ceil(reset)}" if windowed and reset < math.inf else f"{head}{left}"
            )
        return Admission(
            reservation=reservation,
            headers=(("RateLimit-Policy", plan.policy), ("RateLimit", ", ".join(parts))),
        )

    async def settle(
        self, admission: Admission, *, tokens: float | None = None, cost: float | None = None
    ) -> bool:
        """Settle an admitted request with what it actually used (``None``: keep the maximum charged).

        Returns False when the backend failed; the maximum then stays charged and concurrency
        slots free themselves when their lease ends.
        """
        reservation = admission.reservation
        if reservation is None:
            return True
        actual: dict[str, float] = {}
        for charge in reservation.charges:
            if charge.kind is LimitKind.TOKENS and tokens is not None:
                actual[charge.key] = tokens
            elif charge.kind is LimitKind.COST and cost is not None:
                actual[charge.key] = cost
        try:
            await self.backend.settle(reservation, actual)
        except LimitsBackendError:
            return False
        return True

    async def close(self) -> None:
        """Close the backend."""
        await self.backend.close()


def _reserve_amount(spec: BudgetLimit, requested: float | None) -> float:
    if requested is not None and requested > 0:
        return float(requested)
    return spec.reserve if spec.reserve is not None else spec.limit


def _rule_charges(
    rule: LimitRule, tag: str, name: str, max_tokens: float | None, max_cost: float | None
) -> Iterable[Charge]:
    base = f"{rule.name}.{{}}.{tag}"
    if rule.requests is not None:
        yield Charge(
            key=base.format("requests"),
            kind=LimitKind.RATE,
            limit=float(rule.requests.limit),
            window_s=rule.requests.window,
            policy=f"{name}.requests",
        )
    if rule.concurrent is not None:
        yield Charge(
            key=base.format("concurrent"),
            kind=LimitKind.CONCURRENCY,
            limit=float(rule.concurrent),
            window_s=0.0,
            policy=f"{name}.concurrent",
        )
    if rule.tokens is not None:
        yield Charge(
            key=base.format("tokens"),
            kind=LimitKind.TOKENS,
            limit=rule.tokens.limit,
            window_s=rule.tokens.window,
            amount=_reserve_amount(rule.tokens, max_tokens),
            policy=f"{name}.tokens",
        )
    if rule.cost is not None:
        yield Charge(
            key=base.format("cost"),
            kind=LimitKind.COST,
            limit=rule.cost.limit,
            window_s=rule.cost.window,
            amount=_reserve_amount(rule.cost, max_cost),
            policy=f"{name}.cost",
        )
