"""The upstream client against real sockets: keep-alive reuse, chunked bodies, streaming, stale
connections, timeouts, oversized and broken responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from garrison.core.errors import ConfigError
from garrison.gateway.upstream_http import HttpPool, UpstreamError, response_headers

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection_and_echoes_body() -> None:
    connections = 0
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head, body = await _read_request(reader)  # type: ignore[misc]
                heads.append(head)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server, port = await _serve(handler)
        pool = HttpPool(f"http://127.0.0.1:{port}/base")
        for i in range(5):
            response = await pool.request(
                "POST",
                "/v1/x",
                [(b"content-type", b"application/json"), (b"connection", b"close")],
                b"%d" % i,
            )
            assert response.status == 200
            assert response.body == b"%d" % i
        await pool.close()
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())
    assert connections == 1
    assert heads[0].startswith(b"POST /base/v1/x HTTP/1.1\r\n")
    # hop-by-hop headers from the caller are not forwarded
    assert b"connection: close" not in heads[0].lower()


def test_chunked_response_is_dechunked_and_streamed_in_pieces() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for piece in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        server, port = await _serve(handler)
        pool = HttpPool(f"http://127.0.0.1:{port}")
        streamed = await pool.stream("POST", "/s", [], b"{}")
        assert streamed.status == 200
        assert (b"transfer-encoding", b"chunked") not in response_headers(streamed.headers)
        pieces = [chunk async for chunk in streamed.chunks]
        assert b"".join(pieces) == b"data: one\n\ndata: two\n\n"
        assert len(pieces) >= 2
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_stale_keep_alive_connection_is_retried_once() -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await _read_request(reader)
        served += 1
        # answers with keep-alive, then closes anyway: the next request on it finds it dead
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await _serve(handler)
        pool = HttpPool(f"http://127.0.0.1:{port}")
        first = await pool.request("GET", "/", [])
        await asyncio.sleep(0.05)
        second = await pool.request("GET", "/", [])
        assert (first.body, second.body) == (b"ok", b"ok")
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())
    assert served == 2


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", "protocol"),
        (b"NOT HTTP AT ALL\r\n\r\n", "protocol"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000, "too_large"),
    ],
)
def test_broken_responses_raise_upstream_errors(reply: bytes, kind: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await _serve(handler)
        pool = HttpPool(f"http://127.0.0.1:{port}", max_response_bytes=1000)
        with pytest.raises(UpstreamError) as caught:
            await pool.request("GET", "/", [])
        assert caught.value.kind == kind
        await pool.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_silent_upstream_times_out_and_unreachable_one_fails_to_connect() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        server, port = await _serve(handler)
        pool = HttpPool(f"http://127.0.0.1:{port}", timeout=0.2)
        with pytest.raises(UpstreamError) as caught:
            await pool.request("GET", "/", [])
        assert caught.value.kind == "timeout"
        server.close()
        await server.wait_closed()
        dead = HttpPool(f"http://127.0.0.1:{port}")
        with pytest.raises(UpstreamError) as refused:
            await dead.request("GET", "/", [])
        assert refused.value.kind == "connect"

    _run(main())


@pytest.mark.parametrize("url", ["https://example.com", "ftp://x", "http://"])
def test_bad_upstream_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="upstream URL"):
        HttpPool(url)
