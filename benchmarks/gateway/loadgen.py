"""A small HTTP/1.1 load generator for latency: open loop at a fixed rate, or closed loop with N clients.

Why not wrk: wrk is closed loop (each connection waits for its reply before sending again), so it
cannot hold a fixed rate, and when the target stalls it simply sends less: the slow period is
under-sampled ("coordinated omission"). ``hey -q`` has the same flaw (a rate cap per worker).

Open loop (``--rate R``): request *i* is due at ``t0 + i/R`` whatever happened to earlier requests.
Its latency is measured from that due time to the last byte of the reply, so time a request spent
waiting because the target (or a busy connection) held it up is counted, not omitted. A request is
sent on an idle keep-alive connection; if none is idle a new one is opened (up to ``--max-conns``),
beyond that it waits in a FIFO, its clock already running. Requests still unanswered ``--drain``
seconds after the last one was due count as incomplete, with infinite latency in the percentiles.
The generator's own lateness (it wakes on millisecond timers) is reported as ``lag``; it is part of
every target's latency alike, so it cancels in overheads.

Closed loop (``--clients N``): N connections each send, wait for the reply, and send again.

Prints one JSON object. Needs uvloop and httptools (the repository's .venv has both).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import sys
import time
from typing import Any

import httptools
import uvloop


class _Conn(asyncio.Protocol):
    """One keep-alive client connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.closed = True
            if self.done is not None and not self.done.done():
                self.done.set_exception(ConnectionError(str(exc)))
            self.transport.close()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def request(self, data: bytes) -> asyncio.Future[int]:
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.done


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``inf`` when empty)."""
    if not sorted_values:
        return math.inf
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(latencies: list[float], incomplete: int) -> dict[str, float]:
    values = sorted(latencies) + [math.inf] * incomplete
    out = {f"p{q:g}_ms": _percentile(values, q) * 1000 for q in (50, 90, 99, 99.9)}
    out["max_ms"] = values[-1] * 1000 if values else math.inf
    out["mean_ms"] = (sum(latencies) / len(latencies) * 1000) if latencies and not incomplete else math.inf
    return out


class Client:
    """A pool of keep-alive connections to one target."""

    def __init__(self, host: str, port: int, payload: bytes, max_conns: int) -> None:
        self.host = host
        self.port = port
        self.payload = payload
        self.max_conns = max_conns
        self.idle: collections.deque[_Conn] = collections.deque()
        self.open = 0

    async def connect(self) -> _Conn:
        self.open += 1
        try:
            _, conn = await asyncio.get_running_loop().create_connection(_Conn, self.host, self.port)
        except BaseException:
            self.open -= 1
            raise
        return conn

    def release(self, conn: _Conn) -> None:
        if conn.closed or not conn.keep_alive:
            conn.transport.close()
            self.open -= 1
        else:
            self.idle.append(conn)

    def discard(self, conn: _Conn) -> None:
        conn.transport.close()
        self.open -= 1


def build_payload(host: str, port: int, path: str, body: bytes, headers: list[str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += headers
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    client: Client, rate: float, duration: float, warmup: float, drain: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    interval = 1.0 / rate
    n_warm = int(warmup * rate)
    n_total = n_warm + int(duration * rate)
    latencies: list[float] = []
    service: list[float] = []
    lags: list[float] = []
    status_counts: collections.Counter[int] = collections.Counter()
    errors = 0
    waiting: collections.deque[tuple[int, float]] = collections.deque()
    in_flight = 0
    backlog_max = 0
    all_sent = asyncio.Event()
    finished = asyncio.Event()
    completed = 0
    last_end = 0.0

    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        tasks.add(task)  # a reference, so the task is not collected mid-flight
        task.add_done_callback(tasks.discard)

    async def one(i: int, due: float, conn: _Conn | None) -> None:
        nonlocal errors, in_flight, completed, last_end
        try:
            if conn is None:
                conn = await client.connect()
            sent = clock()
            try:
                status = await conn.request(client.payload)
            except ConnectionError:
                client.discard(conn)
                raise
            end = clock()
            client.release(conn)
            if i >= n_warm:
                last_end = max(last_end, end)
                latencies.append(end - due)
                service.append(end - sent)
                lags.append(sent - due)
                status_counts[status] += 1
        except (ConnectionError, OSError):
            if i >= n_warm:
                errors += 1
        in_flight -= 1
        completed += 1
        while waiting and (client.idle or client.open < client.max_conns):
            j, due_j = waiting.popleft()
            in_flight += 1
            spawn(one(j, due_j, client.idle.pop() if client.idle else None))
        if all_sent.is_set() and completed == n_total:
            finished.set()

    t0 = clock() + 0.01
    for i in range(n_total):
        due = t0 + i * interval
        delay = due - clock()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        if client.idle:
            in_flight += 1
            spawn(one(i, due, client.idle.pop()))
        elif client.open < client.max_conns:
            in_flight += 1
            spawn(one(i, due, None))
        else:
            waiting.append((i, due))
            backlog_max = max(backlog_max, len(waiting))
    last_due = t0 + (n_total - 1) * interval
    all_sent.set()
    if completed < n_total:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=max(0.0, last_due + drain - clock()))
    measured = n_total - n_warm
    done_measured = len(latencies)
    incomplete = max(0, measured - done_measured - errors)
    ok = sum(v for k, v in status_counts.items() if 200 <= k < 300)
    result: dict[str, Any] = {
        "mode": "open",
        "rate": rate,
        "duration_s": duration,
        "sent": measured,
        "completed": done_measured,
        "ok": ok,
        "non_2xx": done_measured - ok,
        "errors": errors,
        "incomplete": incomplete,
        # answered per second from the first measured due time to the last reply: below the rate when
        # replies fell behind (all of them may still arrive within the drain time)
        "achieved_rps": done_measured / max(duration, last_end - (t0 + n_warm * interval)),
        "backlog_max": backlog_max,
        "connections": client.open,
    }
    result.update(_summary(latencies, incomplete))
    service.sort()
    lags.sort()
    result["service_p50_ms"] = _percentile(service, 50) * 1000
    result["service_p99_ms"] = _percentile(service, 99) * 1000
    result["lag_p50_ms"] = _percentile(lags, 50) * 1000
    result["lag_p99_ms"] = _percentile(lags, 99) * 1000
    return result


async def closed_loop(client: Client, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    clock = time.perf_counter
    latencies: list[float] = []
    status_counts: collections.Counter[int] = collections.Counter()
    errors = 0
    start = clock()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        nonlocal errors
        conn = await client.connect()
        while True:
            t = clock()
            if t >= stop_at:
                break
            try:
                status = await conn.request(client.payload)
            except ConnectionError:
                client.discard(conn)
                if t >= measure_from:
                    errors += 1
                conn = await client.connect()
                continue
            end = clock()
            if t >= measure_from:
                latencies.append(end - t)
                status_counts[status] += 1
            if not conn.keep_alive:
                client.discard(conn)
                conn = await client.connect()
        client.release(conn)

    await asyncio.gather(*(worker() for _ in range(clients)))
    ok = sum(v for k, v in status_counts.items() if 200 <= k < 300)
    result: dict[str, Any] = {
        "mode": "closed",
        "clients": clients,
        "duration_s": duration,
        "completed": len(latencies),
        "ok": ok,
        "non_2xx": len(latencies) - ok,
        "errors": errors,
        "incomplete": 0,
        "achieved_rps": len(latencies) / duration,
    }
    result.update(_summary(latencies, 0))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="http://host:port/path")
    parser.add_argument(
        "--body", default='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
    )
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    parser.add_argument("--clients", type=int, help="closed loop: concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds sent but not recorded")
    parser.add_argument("--max-conns", type=int, default=256)
    parser.add_argument("--drain", type=float, default=5.0)
    args = parser.parse_args(argv)
    if (args.rate is None) == (args.clients is None):
        parser.error("give exactly one of --rate and --clients")
    from urllib.parse import urlsplit

    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = build_payload(host, port, parts.path or "/", args.body.encode(), args.header)
    client = Client(host, port, payload, args.max_conns)

    async def run() -> dict[str, Any]:
        if args.rate is not None:
            return await open_loop(client, args.rate, args.duration, args.warmup, args.drain)
        return await closed_loop(client, args.clients, args.duration, args.warmup)

    result = uvloop.run(run())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
