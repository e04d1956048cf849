"""Shared backends under real concurrency: SQLite files and a real redis-server, from several processes.

Each worker is a fresh interpreter (the ``spawn`` model: nothing inherited) that opens its own
backend, reports ready, waits for the go signal, and fires its share of reservations at once with
asyncio. The parent counts what was admitted across all of them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from garrison.gateway.limits import (
    Charge,
    LimitBackend,
    Limiter,
    LimitExceeded,
    LimitKind,
    MemoryBackend,
)
from garrison.gateway.limits_config import LimitsSection
from garrison.gateway.limits_redis import RedisBackend
from garrison.gateway.limits_sqlite import SQLiteBackend
from garrison.gateway.types import Denied

pytestmark = pytest.mark.anyio

TOTAL = 200

_WORKER = r"""
import asyncio, json, sys
from garrison.gateway.limits import Charge, LimitExceeded, LimitKind

spec = json.loads(sys.argv[1])
if spec["backend"] == "sqlite":
    from garrison.gateway.limits_sqlite import SQLiteBackend
    backend = SQLiteBackend(spec["target"])
else:
    from garrison.gateway.limits_redis import RedisBackend
    backend = RedisBackend(spec["target"], prefix=spec["prefix"], timeout_s=10)

async def one(charges, actual):
    try:
        res = await backend.reserve(charges)
    except LimitExceeded:
        return 0
    if actual is not None:
        await asyncio.sleep(0.001)
        await backend.settle(res, {c.key: actual for c in charges})
    return 1

async def main():
    await backend.reserve([])  # connect before the first start line
    for scenario in spec["scenarios"]:
        charges = [Charge(key=c["key"], kind=LimitKind(c["kind"]), limit=c["limit"], window_s=c["window"],
                          amount=c["amount"]) for c in scenario["charges"]]
        print("ready", flush=True)
        sys.stdin.readline()
        results = await asyncio.gather(*(one(charges, scenario["actual"]) for _ in range(scenario["n"])))
        print(json.dumps(sum(results)), flush=True)
    await backend.close()

asyncio.run(main())
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed; these tests need a real one (apt install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    proc, url = _start_redis()
    yield url
    _stop(proc)


_prefixes = iter(range(1_000_000))


def _prefix() -> str:
    return f"test{next(_prefixes)}:"


Scenario = tuple[list[Charge], float | None]
"""Charges every request makes, and the actual amount each settles (None: no settle)."""


def _run_workers(
    backend: str, target: str, prefix: str, workers: int, scenarios: list[Scenario]
) -> list[int]:
    """Per scenario, TOTAL reservations over ``workers`` processes started together: admitted counts."""
    share = [TOTAL // workers + (1 if i < TOTAL % workers else 0) for i in range(workers)]
    procs = []
    for n in share:
        spec = {
            "backend": backend,
            "target": target,
            "prefix": prefix,
            "scenarios": [
                {
                    "n": n,
                    "actual": actual,
                    "charges": [
                        {
                            "key": c.key,
                            "kind": c.kind.value,
                            "limit": c.limit,
                            "window": c.window_s,
                            "amount": c.amount,
                        }
                        for c in charges
                    ],
                }
                for charges, actual in scenarios
            ],
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        counts = []
        for _ in scenarios:
            for proc in procs:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
            for proc in procs:  # the start line: every worker fires at once
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            counts.append(sum(int(proc.stdout.readline()) for proc in procs if proc.stdout is not None))
        for proc in procs:
            proc.communicate(timeout=60)
            assert proc.returncode == 0
        return counts
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


Target = tuple[str, str]


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "limits.db")
    return "redis", request.getfixturevalue("redis_url")


def _backend(target: Target, prefix: str, **kwargs: float) -> LimitBackend:
    kind, where = target
    if kind == "sqlite":
        return SQLiteBackend(where, **kwargs)  # type: ignore[arg-type]
    return RedisBackend(where, prefix=prefix, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_200_parallel_requests_admit_exactly_50(shared: Target, workers: int) -> None:
    roomy = Charge(key="per-key.requests", kind=LimitKind.RATE, limit=10_000, window_s=60)  # never the limit
    spend = Charge(key="spend", kind=LimitKind.COST, limit=10.0, window_s=0.0, amount=0.5)
    prefix = _prefix()
    tokens, requests, cost = _run_workers(
        *shared,
        prefix,
        workers,
        [
            ([roomy, Charge(key="tokens", kind=LimitKind.TOKENS, limit=50, window_s=0.0)], None),
            ([roomy, Charge(key="requests", kind=LimitKind.RATE, limit=50, window_s=3600)], None),
            ([spend], 0.25),  # reserve 0.5 each, settle 0.25
        ],
    )
    assert (tokens, requests) == (50, 50)
    # Cost: the first 20 always fit (20 x 0.5); refunds let more in; the actual spend never passes 10.
    assert 20 <= cost <= 40
    probe = Charge(key="spend", kind=LimitKind.COST, limit=10.0, window_s=0.0, amount=0.25)
    backend = _backend(shared, prefix)
    try:
        if cost == 40:
            with pytest.raises(LimitExceeded):
                await backend.reserve([probe])
        else:  # what is left is exactly the budget minus the actual spend of every admitted request
            res = await backend.reserve([probe])
            assert res.quotas[0].remaining == 10.0 - 0.25 * (cost + 1)
    finally:
        await backend.close()


# --- the same semantics on every backend --------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LimitBackend]:
    backend: LimitBackend
    if request.param == "memory":
        backend = MemoryBackend(lease_s=0.3)
    elif request.param == "sqlite":
        backend = SQLiteBackend(tmp_path / "l.db", lease_s=0.3)
    else:
        backend = RedisBackend(request.getfixturevalue("redis_url"), prefix=_prefix(), lease_s=0.3)
    yield backend
    await backend.close()


async def test_every_backend_agrees(any_backend: LimitBackend) -> None:
    rate = Charge(key="r", kind=LimitKind.RATE, limit=3, window_s=60)
    slot = Charge(key="c", kind=LimitKind.CONCURRENCY, limit=2, window_s=0)
    toks = Charge(key="t", kind=LimitKind.TOKENS, limit=100, window_s=3600, amount=40)
    first = await any_backend.reserve([rate, slot, toks])
    assert [q.remaining for q in first.quotas] == [2, 1, 60]
    assert first.quotas[0].reset_s == pytest.approx(20, abs=0.5)
    assert 0 < first.quotas[2].reset_s <= 3600
    await any_backend.reserve([rate, slot, toks])
    with pytest.raises(LimitExceeded) as info:
        await any_backend.reserve([rate, slot, toks])
    assert info.value.key == "c"
    assert info.value.retry_after_s == 1
    await any_backend.settle(first, {"t": 10})
    await any_backend.settle(first, {"t": 0})  # idempotent
    third = await any_backend.reserve([rate, slot, toks])  # the slot came back; 30 tokens refunded once
    assert [q.remaining for q in third.quotas] == [0, 0, 10]
    with pytest.raises(LimitExceeded) as info:
        await any_backend.reserve([rate])
    assert info.value.retry_after_s == pytest.approx(20, abs=0.5)
    with pytest.raises(LimitExceeded) as info:
        await any_backend.reserve(
            [Charge(key="t", kind=LimitKind.TOKENS, limit=100, window_s=3600, amount=11)]
        )
    assert info.value.remaining == pytest.approx(10)
    # all or nothing: the failing token charge left the fresh slot counter alone
    with pytest.raises(LimitExceeded):
        await any_backend.reserve([Charge(key="c2", kind=LimitKind.CONCURRENCY, limit=1, window_s=0), toks])
    lone = await any_backend.reserve([Charge(key="c2", kind=LimitKind.CONCURRENCY, limit=1, window_s=0)])
    assert lone.quotas[0].remaining == 0


async def test_leaked_concurrency_slots_expire(any_backend: LimitBackend) -> None:
    slot = Charge(key="leak", kind=LimitKind.CONCURRENCY, limit=1, window_s=0)
    leaked = await any_backend.reserve([slot])
    with pytest.raises(LimitExceeded):
        await any_backend.reserve([slot])
    await asyncio.sleep(0.4)  # past the 0.3 s lease
    fresh = await any_backend.reserve([slot])
    await any_backend.settle(leaked)  # too late: a no-op that must not free the fresh slot
    with pytest.raises(LimitExceeded):
        await any_backend.reserve([slot])
    await any_backend.settle(fresh)
    await any_backend.reserve([slot])


# --- backend down -------------------------------------------------------------------------------------

_RULES = {"limits": [{"name": "a", "requests": {"limit": 100, "window": "1m"}, "concurrent": 10}]}


async def _admit(lim: Limiter) -> object:
    return await lim.admit(principal_id="key_a", roles=(), route="chat")


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_redis_killed(mode: str) -> None:
    proc, url = _start_redis()
    section = LimitsSection.model_validate(
        {**_RULES, "limits_backend": {"type": "redis", "url": url, "on_backend_error": mode}}
    )
    lim = Limiter.from_config(section)
    try:
        first = await lim.admit(principal_id="key_a", roles=(), route="chat")
        assert first.reservation is not None
        _stop(proc)
        await _expect_down(lim, mode)
        assert not await lim.settle(first)  # settle reports the failure instead of raising
    finally:
        await lim.close()
        _stop(proc)


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_sqlite_unusable(tmp_path: Path, mode: str) -> None:
    where = tmp_path / "limits.db"
    section = LimitsSection.model_validate(
        {**_RULES, "limits_backend": {"type": "sqlite", "path": str(where), "on_backend_error": mode}}
    )
    lim = Limiter.from_config(section)
    try:
        assert (await lim.admit(principal_id="key_a", roles=(), route="chat")).reservation is not None
        await lim.close()
        for leftover in tmp_path.iterdir():
            leftover.unlink()
        where.write_bytes(b"this is not a database" * 100)  # (tests run as root, so chmod would not stop it)
        await _expect_down(lim, mode)
    finally:
        await lim.close()


async def _expect_down(lim: Limiter, mode: str) -> None:
    if mode == "closed":
        with pytest.raises(Denied) as info:
            await lim.admit(principal_id="key_a", roles=(), route="chat")
        assert (info.value.status, info.value.reason) == (503, "limits_backend_down")
    else:
        adm = await lim.admit(principal_id="key_a", roles=(), route="chat")
        assert adm.fail_open
        assert adm.headers == ()


def test_sqlite_file_is_plain_counters(tmp_path: Path) -> None:
    """The file is SQLite in WAL mode with the four counter tables, readable by the sqlite3 shell."""
    backend = SQLiteBackend(tmp_path / "c.db")
    asyncio.run(backend.reserve([Charge(key="x", kind=LimitKind.TOKENS, limit=5, window_s=0, amount=2)]))
    asyncio.run(backend.close())
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT key, used FROM budget").fetchall() == [("x", 2.0)]
        assert conn.execute("SELECT count(*) FROM pending").fetchone()[0] == 1
    conn.close()
