"""In-process limits: window arithmetic, retry_after, all-or-nothing, settle, leases, headers, config."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from garrison.gateway.limits import (
    Charge,
    Limiter,
    LimitExceeded,
    LimitKind,
    MemoryBackend,
    Reservation,
)
from garrison.gateway.limits_config import LimitRule, LimitsSection, parse_duration
from garrison.gateway.limits_sqlite import SQLiteBackend
from garrison.gateway.types import Denied

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rate(limit: float, window: float, key: str = "r") -> Charge:
    return Charge(key=key, kind=LimitKind.RATE, limit=limit, window_s=window, policy=key)


def conc(limit: float, key: str = "c") -> Charge:
    return Charge(key=key, kind=LimitKind.CONCURRENCY, limit=limit, window_s=0.0, policy=key)


def tokens(limit: float, amount: float, window: float = 3600.0, key: str = "t") -> Charge:
    return Charge(key=key, kind=LimitKind.TOKENS, limit=limit, window_s=window, amount=amount, policy=key)


async def denied(backend: MemoryBackend, charges: list[Charge]) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        await backend.reserve(charges)
    return info.value


async def test_gcra_admits_a_burst_then_one_per_interval_with_exact_retry_after() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    for expected_remaining in (2, 1, 0):
        res = await backend.reserve([rate(3, 60)])
        assert res.quotas[0].remaining == expected_remaining
    exc = await denied(backend, [rate(3, 60)])
    assert exc.retry_after_s == pytest.approx(20.0)
    assert exc.remaining == 0
    clock.now += 19.9
    await denied(backend, [rate(3, 60)])
    clock.now += 0.1
    res = await backend.reserve([rate(3, 60)])
    assert res.quotas[0].remaining == 0
    assert res.quotas[0].reset_s == pytest.approx(60.0)
    clock.now += 60
    assert (await backend.reserve([rate(3, 60)])).quotas[0].remaining == 2


async def test_reserve_is_all_or_nothing() -> None:
    backend = MemoryBackend(clock=Clock())
    exc = await denied(backend, [rate(5, 60), conc(3), tokens(100, 150)])
    assert exc.key == "t"
    assert exc.retry_after_s == math.inf  # more than the whole budget: never
    # the counters before the failing one were not touched
    res = await backend.reserve([rate(5, 60), conc(3)])
    assert [q.remaining for q in res.quotas] == [4, 2]


async def test_failed_reservation_changes_no_counter() -> None:
    backend = MemoryBackend(clock=Clock())
    await backend.reserve([tokens(100, 90)])
    for _ in range(3):
        await denied(backend, [rate(2, 60), conc(1), tokens(100, 20)])
    first = await backend.reserve([rate(2, 60), conc(1)])
    assert [q.remaining for q in first.quotas] == [1, 0]


async def test_settle_refunds_maximum_minus_actual_once() -> None:
    backend = MemoryBackend(clock=Clock())
    res = await backend.reserve([tokens(100, 60)])
    await denied(backend, [tokens(100, 60)])
    await backend.settle(res, {"t": 10})
    await backend.settle(res, {"t": 0})  # idempotent: no second refund
    after = await backend.reserve([tokens(100, 80)])
    assert after.quotas[0].remaining == pytest.approx(10)
    await denied(backend, [tokens(100, 11)])


async def test_settle_without_actual_keeps_the_maximum_and_larger_actual_is_charged() -> None:
    backend = MemoryBackend(clock=Clock())
    res = await backend.reserve([tokens(100, 30)])
    await backend.settle(res, None)
    res = await backend.reserve([tokens(100, 30)])
    await backend.settle(res, {"t": 50})
    assert (await backend.reserve([tokens(100, 1)])).quotas[0].remaining == pytest.approx(19)


async def test_spent_budget_denies_everything_until_its_window_ends() -> None:
    clock = Clock(now=7200.0 + 3000.0)  # 3000 s into an hour window
    backend = MemoryBackend(clock=clock)
    await backend.reserve([tokens(100, 100)])
    exc = await denied(backend, [tokens(100, 1)])
    assert exc.retry_after_s == pytest.approx(600.0)
    assert exc.reset_s == pytest.approx(600.0)
    clock.now += 600
    assert (await backend.reserve([tokens(100, 1)])).quotas[0].remaining == 99


async def test_refund_after_the_window_rolled_over_is_dropped() -> None:
    clock = Clock(now=3600.0 * 10 + 3590)
    backend = MemoryBackend(clock=clock)
    old = await backend.reserve([tokens(100, 90)])
    clock.now += 20  # next window
    new = await backend.reserve([tokens(100, 50)])
    await backend.settle(old, {"t": 0})  # must not refund 90 into the new window
    await backend.settle(new, {"t": 50})
    assert (await backend.reserve([tokens(100, 1)])).quotas[0].remaining == pytest.approx(49)


async def test_total_budget_never_resets() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    await backend.reserve([tokens(10, 10, window=0)])
    clock.now += 10 * 86400
    exc = await denied(backend, [tokens(10, 1, window=0)])
    assert exc.retry_after_s == math.inf


async def test_concurrency_slot_is_freed_by_settle_or_by_lease_expiry() -> None:
    clock = Clock()
    backend = MemoryBackend(lease_s=300, clock=clock)
    a = await backend.reserve([conc(2)])
    b = await backend.reserve([conc(2)])
    exc = await denied(backend, [conc(2)])
    assert exc.retry_after_s == 1.0
    await backend.settle(a)
    c = await backend.reserve([conc(2)])
    clock.now += 301  # b and c leaked: their leases end
    d = await backend.reserve([conc(2)])
    e = await backend.reserve([conc(2)])
    await denied(backend, [conc(2)])
    await backend.settle(b)  # late settle of an expired lease frees nothing of d's or e's
    await backend.settle(c)
    await denied(backend, [conc(2)])
    await backend.settle(d)
    await backend.settle(e)
    assert (await backend.reserve([conc(2)])).quotas[0].remaining == 1


async def test_parallel_reservations_never_exceed_the_budget() -> None:
    backend = MemoryBackend()

    async def one() -> Reservation | None:
        await asyncio.sleep(0)
        try:
            return await backend.reserve([tokens(50, 1, window=0)])
        except LimitExceeded:
            return None

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(r is not None for r in results) == 50


# --- limiter ------------------------------------------------------------------------------------------


def limiter(*rules: dict[str, object], backend: object = None, fail_open: bool = False) -> Limiter:
    section = LimitsSection.model_validate({"limits": list(rules)})
    return Limiter(section.limits, backend or MemoryBackend(clock=Clock()), fail_open=fail_open)  # type: ignore[arg-type]


def test_charges_follow_per_and_match() -> None:
    lim = limiter(
        {"name": "k", "per": "key", "requests": {"limit": 10, "window": "1m"}, "concurrent": 2},
        {"name": "r", "per": "role", "match": {"roles": ["free", "pro"]}, "tokens": {"limit": 1000}},
        {
            "name": "chat",
            "per": "route",
            "match": {"routes": ["chat*"]},
            "cost": {"limit": 5, "window": "1d"},
        },
        {
            "name": "all",
            "per": "global",
            "match": {"roles": ["admin"]},
            "requests": {"limit": 1, "window": 1},
        },
    )
    charges = lim.charges(
        principal_id="key_a",
        roles={"free", "pro", "x"},
        route="chat.completions",
        max_tokens=200,
        max_cost=0.5,
    )
    assert [(c.key, c.kind, c.limit, c.window_s, c.amount) for c in charges] == [
        ("k.requests.key=key_a", LimitKind.RATE, 10, 60, 1),
        ("k.concurrent.key=key_a", LimitKind.CONCURRENCY, 2, 0, 1),
        ("r.tokens.role=free", LimitKind.TOKENS, 1000, 0, 200),
        ("r.tokens.role=pro", LimitKind.TOKENS, 1000, 0, 200),
        ("chat.cost.route=chat.completions", LimitKind.COST, 5, 86400, 0.5),
    ]
    assert [c.key for c in lim.charges(principal_id="key_b", roles=["admin"], route="embed")] == [
        "k.requests.key=key_b",
        "k.concurrent.key=key_b",
        "all.requests.global=*",
    ]


def test_budget_without_a_stated_maximum_reserves_the_configured_amount_or_the_whole_limit() -> None:
    lim = limiter(
        {"name": "a", "tokens": {"limit": 1000, "reserve": 50}},
        {"name": "b", "cost": {"limit": 2.5}},
    )
    charges = lim.charges(principal_id="k", roles=(), route="x")
    assert [c.amount for c in charges] == [50, 2.5]


async def test_admit_sends_ratelimit_headers_and_settle_refunds() -> None:
    lim = limiter(
        {
            "name": "free",
            "requests": {"limit": 10, "window": "60s"},
            "concurrent": 2,
            "tokens": {"limit": 1000, "window": "1h"},
            "cost": {"limit": 1.5},
        },
    )
    adm = await lim.admit(principal_id="k", roles=(), route="chat", max_tokens=400, max_cost=0.25)
    headers = dict(adm.headers)
    assert headers["RateLimit-Policy"] == (
        '"free.requests";q=10;w=60, "free.concurrent";q=2;qu="concurrency", '
        '"free.tokens";q=1000;w=3600;qu="tokens", "free.cost";q=1500000;qu="cost-micros"'
    )
    assert headers["RateLimit"].startswith(
        '"free.requests";r=9;t=6, "free.concurrent";r=1, "free.tokens";r=600;t='
    )
    assert headers["RateLimit"].endswith('"free.cost";r=1250000')
    assert await lim.settle(adm, tokens=100, cost=0.05)
    again = await lim.admit(principal_id="k", roles=(), route="chat", max_tokens=1, max_cost=0.01)
    assert '"free.tokens";r=899;' in dict(again.headers)["RateLimit"]
    assert dict(again.headers)["RateLimit"].endswith('"free.cost";r=1440000')


async def test_denial_is_a_429_with_retry_after_and_the_full_counter() -> None:
    lim = limiter({"name": "slow", "requests": {"limit": 2, "window": "10s"}})
    for _ in range(2):
        await lim.admit(principal_id="k", roles=(), route="r")
    with pytest.raises(Denied) as info:
        await lim.admit(principal_id="k", roles=(), route="r")
    assert info.value.status == 429
    assert info.value.reason == "rate_limited"
    assert dict(info.value.headers) == {
        "Retry-After": "5",
        "RateLimit-Policy": '"slow.requests";q=2;w=10',
        "RateLimit": '"slow.requests";r=0;t=10',
    }
    other = await lim.admit(principal_id="other", roles=(), route="r")  # per key: another key is free
    assert other.reservation is not None


async def test_spent_total_budget_asks_to_retry_after_a_day() -> None:
    lim = limiter({"name": "once", "cost": {"limit": 1}})
    await lim.admit(principal_id="k", roles=(), route="r", max_cost=1)
    with pytest.raises(Denied) as info:
        await lim.admit(principal_id="k", roles=(), route="r", max_cost=0.1)
    assert info.value.reason == "cost_budget_exceeded"
    assert dict(info.value.headers)["Retry-After"] == "86400"


async def test_no_applicable_limit_means_no_headers() -> None:
    lim = limiter({"name": "chat", "match": {"routes": ["chat"]}, "requests": {"limit": 1, "window": 1}})
    adm = await lim.admit(principal_id="k", roles=(), route="embed")
    assert adm.reservation is None
    assert adm.headers == ()
    assert await lim.settle(adm)


@pytest.mark.parametrize("fail_open", [False, True])
async def test_backend_failure_is_closed_or_open(tmp_path: Path, fail_open: bool) -> None:
    broken = SQLiteBackend(tmp_path)  # a directory: SQLite cannot open it
    lim = limiter({"name": "a", "requests": {"limit": 5, "window": 1}}, backend=broken, fail_open=fail_open)
    if fail_open:
        adm = await lim.admit(principal_id="k", roles=(), route="r")
        assert adm.fail_open
        assert adm.reservation is None
    else:
        with pytest.raises(Denied) as info:
            await lim.admit(principal_id="k", roles=(), route="r")
        assert (info.value.status, info.value.reason) == (503, "limits_backend_down")
    await lim.close()


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("60s", 60), ("60", 60), (90, 90), ("15m", 900), ("1h", 3600), ("1d", 86400)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", "1w", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"limits": [{"name": "a", "requests": {"limit": 1, "window": "1s"}, "burst": 3}]}, "burst"),
        ({"limits": [{"name": "a"}]}, "sets none of"),
        ({"limits": [{"name": "a", "concurrent": 1}, {"name": "a", "concurrent": 2}]}, "unique"),
        ({"limits_backend": {"type": "sqlite"}}, "needs a path"),
        ({"limits_backend": {"type": "redis"}}, "needs a url"),
        ({"limits_backend": {"type": "memory", "on_backend_error": "maybe"}}, "on_backend_error"),
        ({"limits": [{"name": "a", "per": "user", "concurrent": 1}]}, "per"),
    ],
)
def test_config_rejects(document: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LimitsSection.model_validate(document)


def test_config_reads_yaml_shape() -> None:
    section = LimitsSection.model_validate(
        {
            "limits_backend": {
                "type": "sqlite",
                "path": "/tmp/x.db",
                "on_backend_error": "open",
                "lease_seconds": "2m",
            },
            "limits": [
                {
                    "name": "free",
                    "per": "role",
                    "match": {"roles": ["free"]},
                    "tokens": {"limit": 1e5, "window": "1d"},
                }
            ],
        }
    )
    assert section.limits_backend.lease_seconds == 120
    rule: LimitRule = section.limits[0]
    assert rule.tokens is not None
    assert rule.tokens.window == 86400
