"""A small keep-alive HTTP/1.1 client for upstream calls, built for the gateway's hot path.

Why not httpx: on this path every microsecond is overhead the caller pays on each request, and a
general client spends hundreds of them per call on features a reverse proxy does not need. This
client keeps a pool of asyncio connections per upstream, writes the request in one ``write()``,
and parses the response with httptools (the C parser uvicorn uses), so a call costs a few tens of
microseconds of Python.

What it does:

- one pool per upstream origin, at most ``max_connections`` open, idle connections reused;
- a request that fails on a reused connection before any response byte arrived is retried once on
  a fresh connection (the upstream closed an idle keep-alive connection under us);
- timeouts for connecting and for the whole response (no ``asyncio.wait_for``: a timer callback);
- a bound on response size, so an upstream cannot make the gateway buffer without end;
- streaming: :meth:`HttpPool.stream` returns the status and headers as soon as they arrive and
  then the body chunks (already de-chunked) as the upstream sends them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from garrison.core.errors import ConfigError

Headers = list[tuple[bytes, bytes]]

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


class UpstreamError(Exception):
    """The upstream could not be reached, timed out, or sent something that is not HTTP."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        """``connect``, ``timeout``, ``protocol``, ``closed`` or ``too_large``."""


@dataclass(slots=True)
class UpstreamResponse:
    """A complete upstream response."""

    status: int
    headers: Headers
    body: bytes


@dataclass(slots=True)
class StreamedResponse:
    """An upstream response whose body is still arriving."""

    status: int
    headers: Headers
    chunks: AsyncIterator[bytes]
    """The body, de-chunked, in the pieces the upstream sent."""
    _conn: _Connection | None = field(default=None, repr=False)

    def abort(self) -> None:
        """Drop the connection (the caller stopped reading the body)."""
        if self._conn is not None:
            self._conn.close()


def response_headers(headers: Headers) -> Headers:
    """The upstream's headers minus hop-by-hop fields, fit to forward to the client."""
    return [(name, value) for name, value in headers if name not in _HOP_BY_HOP]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._max_body = max_body
        self._parser: httptools.HttpResponseParser | None = None
        self._done: asyncio.Future[UpstreamResponse] | None = None
        self._head: asyncio.Future[None] | None = None
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._status = 0
        self._headers: Headers = []
        self._parts: list[bytes] = []
        self._size = 0
        self._received = False
        self._complete = False
        self._keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        parser = self._parser
        if parser is None:  # bytes with no request outstanding: the upstream is confused
            self.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # a callback's own error (an oversized body) arrives wrapped by the parser
            cause = exc.__cause__ or exc.__context__
            self._fail(cause if isinstance(cause, UpstreamError) else UpstreamError("protocol", str(exc)))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._complete:
            kind = "closed" if not self._received else "protocol"
            self._fail(UpstreamError(kind, "upstream closed the connection"))

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._queue is not None:
            self._queue.put_nowait(body)
            return
        self._size += len(body)
        if self._size > self._max_body:
            raise UpstreamError("too_large", f"response body over {self._max_body} bytes")
        self._parts.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()
        if self._queue is not None:
            self._queue.put_nowait(None)
        elif self._done is not None and not self._done.done():
            self._done.set_result(UpstreamResponse(self._status, self._headers, b"".join(self._parts)))

    # -- use ----------------------------------------------------------------------------------

    def start(self, request: bytes, *, streaming: bool) -> None:
        loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._status = 0
        self._headers = []
        self._parts = []
        self._size = 0
        self._received = False
        self._complete = False
        self._keep_alive = False
        self._done = loop.create_future()
        self._head = loop.create_future() if streaming else None
        self._queue = asyncio.Queue() if streaming else None
        assert self.transport is not None
        self.transport.write(request)

    def finished_cleanly(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def release_parser(self) -> None:
        self._parser = None
        self._done = None
        self._head = None
        self._queue = None
        self._parts = []

    def _fail(self, exc: UpstreamError) -> None:
        for future in (self._head, self._done):
            if future is not None and not future.done():
                future.set_exception(exc)
        if self._queue is not None and not self._complete:
            self._complete = True
            self._queue.put_nowait(None)
        # a future nobody awaits must not log "exception never retrieved"
        if self._done is not None and self._head is not None:
            self._done.add_done_callback(_consume)

    def timeout(self, kind: str = "timeout") -> None:
        self._fail(UpstreamError(kind, "no complete response in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _consume(future: asyncio.Future[UpstreamResponse]) -> None:
    if not future.cancelled():
        future.exception()


class HttpPool:
    """Keep-alive connections to one upstream origin (``http://host:port``)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 256,
        connect_timeout: float = 5.0,
        timeout: float = 60.0,
        max_response_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                f"upstream URL {base_url!r} must be http://host[:port][/prefix]",
                hint="https upstreams are reached through a local TLS-terminating proxy in this version",
            )
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._host_header = (parts.netloc or self.host).encode("ascii")
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_body = max_response_bytes

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self._max_body), self.host, self.port),
                self._connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError("connect", type(exc).__name__) from None
        return conn

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return await self._connect()

    def _release(self, conn: _Connection) -> None:
        clean = conn.finished_cleanly()
        conn.release_parser()
        if clean:
            self._idle.append(conn)
        else:
            conn.close()

    def _encode(self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
        lines = [
            f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
            b"host: ",
            self._host_header,
            b"\r\ncontent-length: ",
            str(len(body)).encode("ascii"),
            b"\r\n",
        ]
        for name, value in headers:
            if name in _HOP_BY_HOP or name == b"host":
                continue
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"\r\n", body]
        return b"".join(lines)

    async def request(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes = b""
    ) -> UpstreamResponse:
        """Send one request and return the whole response; raises :class:`UpstreamError`."""
        payload = self._encode(method, path, headers, body)
        loop = asyncio.get_running_loop()
        async with self._slots:
            for attempt in (0, 1):
                conn = await self._acquire()
                conn.start(payload, streaming=False)
                timer = loop.call_later(self._timeout, conn.timeout)
                try:
                    assert conn._done is not None
                    response = await conn._done
                except UpstreamError as exc:
                    conn.release_parser()
                    conn.close()
                    if exc.kind == "closed" and conn.reused and attempt == 0:
                        continue
                    raise
                except BaseException:
                    conn.release_parser()
                    conn.close()
                    raise
                finally:
                    timer.cancel()
                self._release(conn)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes = b""
    ) -> StreamedResponse:
        """Send one request; return as soon as the status and headers arrived.

        The caller must exhaust :attr:`StreamedResponse.chunks` or call ``abort()``.
        """
        payload = self._encode(method, path, headers, body)
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        try:
            for attempt in (0, 1):
                conn = await self._acquire()
                conn.start(payload, streaming=True)
                timer = loop.call_later(self._timeout, conn.timeout)
                try:
                    assert conn._head is not None
                    await conn._head
                except UpstreamError as exc:
                    timer.cancel()
                    conn.release_parser()
                    conn.close()
                    if exc.kind == "closed" and conn.reused and attempt == 0:
                        continue
                    raise
                except BaseException:
                    timer.cancel()
                    conn.release_parser()
                    conn.close()
                    raise
                return StreamedResponse(conn._status, conn._headers, self._chunks(conn, timer), _conn=conn)
        except BaseException:
            self._slots.release()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _chunks(self, conn: _Connection, timer: asyncio.TimerHandle) -> AsyncIterator[bytes]:
        queue = conn._queue
        assert queue is not None
        try:
            while True:
                chunk = await queue.get()
                if chunk is None:
                    break
                yield chunk
            if not conn._complete or conn._status == 0:
                raise UpstreamError("protocol", "stream ended early")
            if conn._done is not None and conn._done.done() and conn._done.exception() is not None:
                raise UpstreamError("closed", "upstream closed the stream")
        finally:
            timer.cancel()
            self._release(conn)
            self._slots.release()

    async def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()
