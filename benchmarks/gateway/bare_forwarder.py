"""Reference target (d): the least a Python reverse proxy on uvicorn can do per request.

A pure ASGI app (no framework, no auth, no checks) that reads the request body, forwards method,
path, body and end-to-end headers to one upstream over a keep-alive HTTP/1.1 connection, and relays
status, headers and body back (chunked responses such as SSE are relayed chunk by chunk). Whatever a
real gateway adds on top of this number is the cost of its features.

Two upstream clients, chosen with ``BARE_CLIENT``:

- ``raw`` (default): an asyncio protocol per connection, responses parsed with httptools, a per-worker
  pool of idle connections. Needs only uvicorn, uvloop and httptools.
- ``httpx``: ``httpx.AsyncClient`` with a keep-alive pool (needs httpx installed).

Environment: ``BARE_UPSTREAM`` (default ``http://127.0.0.1:18000``), ``BARE_CLIENT``.
Run: ``python -m uvicorn bare_forwarder:app --loop uvloop --http httptools --workers N --no-access-log``.
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import Any
from urllib.parse import urlsplit

import httptools

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:18000")
CLIENT = os.environ.get("BARE_CLIENT", "raw")
MAX_IDLE = 512

_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
    }
)


class _Conn(asyncio.Protocol):
    """One keep-alive connection to the upstream; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bool]] | None = None
        self.done: asyncio.Future[None] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.queue: asyncio.Queue[bytes | None] | None = None
        self.has_length = False
        self.keep_alive = True

    def start(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.head = loop.create_future()
        self.done = loop.create_future()
        self.headers = []
        self.body = []
        self.queue = None
        self.has_length = False
        self.transport.write(data)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError("upstream closed the connection")
        for fut in (self.head, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(error)
        if self.queue is not None:
            self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.closed = True
            if self.head is not None and not self.head.done():
                self.head.set_exception(ConnectionError(str(exc)))
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.has_length = True
        if name not in _HOP:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if not self.has_length:
            self.queue = asyncio.Queue()
        assert self.head is not None
        self.head.set_result((self.parser.get_status_code(), self.headers, self.has_length))

    def on_body(self, body: bytes) -> None:
        if self.queue is not None:
            self.queue.put_nowait(body)
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.queue is not None:
            self.queue.put_nowait(None)
        assert self.done is not None
        if not self.done.done():
            self.done.set_result(None)


class RawPool:
    """Idle keep-alive connections to one upstream, per worker process."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.idle: collections.deque[_Conn] = collections.deque()

    async def acquire(self) -> _Conn:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(_Conn, self.host, self.port)
        return conn

    def release(self, conn: _Conn) -> None:
        if conn.keep_alive and not conn.closed and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn.transport.close()


_state: dict[str, Any] = {}
"""Per worker process: ``pool`` (RawPool) or ``httpx`` (AsyncClient), made on first use."""


async def _forward_raw(scope: dict[str, Any], body: bytes, send: Any) -> None:
    pool: RawPool | None = _state.get("pool")
    if pool is None:
        pool = _state["pool"] = RawPool(UPSTREAM)
    target = scope["raw_path"] or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (scope["method"].encode(), target, pool.host_header)]
    lines += [b"%s: %s\r\n" % (k, v) for k, v in scope["headers"] if k not in _HOP]
    lines.append(b"content-length: %d\r\n\r\n" % len(body))
    lines.append(body)
    conn = await pool.acquire()
    conn.start(b"".join(lines))
    try:
        assert conn.head is not None
        assert conn.done is not None
        status, headers, has_length = await conn.head
        if has_length:
            await conn.done
            payload = b"".join(conn.body)
            headers.append((b"content-length", b"%d" % len(payload)))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        else:
            assert conn.queue is not None
            await send({"type": "http.response.start", "status": status, "headers": headers})
            while (chunk := await conn.queue.get()) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            await conn.done
    except BaseException:
        conn.closed = True
        conn.transport.close()
        raise
    pool.release(conn)


async def _forward_httpx(scope: dict[str, Any], body: bytes, send: Any) -> None:
    import httpx

    client = _state.get("httpx")
    if client is None:
        limits = httpx.Limits(max_connections=MAX_IDLE, max_keepalive_connections=MAX_IDLE)
        client = _state["httpx"] = httpx.AsyncClient(base_url=UPSTREAM, limits=limits, timeout=30.0)
    headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
    path = scope["raw_path"].decode("latin-1") if scope["raw_path"] else scope["path"]
    if scope["query_string"]:
        path += "?" + scope["query_string"].decode("latin-1")
    request = client.build_request(scope["method"], path, headers=headers, content=body)
    response = await client.send(request, stream=True)
    try:
        out = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    try:
        if CLIENT == "httpx":
            await _forward_httpx(scope, body, send)
        else:
            await _forward_raw(scope, body, send)
    except (ConnectionError, OSError):
        msg = b'{"error":"upstream error"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(msg))]
        await send({"type": "http.response.start", "status": 502, "headers": headers})
        await send({"type": "http.response.body", "body": msg})
