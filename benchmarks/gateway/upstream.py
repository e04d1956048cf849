"""A fast local OpenAI-compatible stub: the upstream every gateway benchmark target forwards to.

It answers with fixed bodies and no work per request, so that what a benchmark measures is the
target in front of it, not this stub. Two implementations of the same routes:

- ``raw`` (default): an asyncio protocol on uvloop that parses requests with httptools (the C parser
  uvicorn uses) and writes each response in one ``write()``. Fastest.
- ``asgi``: a pure ASGI app (no framework) served by uvicorn with httptools and uvloop.

Routes (any other path: 404):

- ``POST /v1/chat/completions``: a small fixed chat completion with ``usage``; with ``"stream": true``
  in the body, the same completion as server-sent events (chunked), ending in ``data: [DONE]``.
- ``POST /v1/embeddings``: one small embedding.
- ``POST /v2/models/{name}/infer``: a KServe v2 inference response.
- ``GET /healthz``, ``GET /v1/models``.

Run: ``python upstream.py --port 18000 [--impl raw|asgi] [--workers N]``. With ``--workers N`` the raw
server forks N processes that share the port (``SO_REUSEPORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from typing import Any

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! This is a fixed benchmark reply."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    },
    separators=(",", ":"),
).encode()

EMBEDDING = json.dumps(
    {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.0125, -0.25, 0.5, 0.75, -0.0625, 0.125]}
        ],
        "model": "bench-embed",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    },
    separators=(",", ":"),
).encode()

MODELS = json.dumps(
    {"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]},
    separators=(",", ":"),
).encode()


def _sse_events() -> bytes:
    """The streamed completion: role, three content pieces, a finish chunk with usage, [DONE]."""
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
    }
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in ("Hello! ", "This is a fixed ", "benchmark reply.")]
    out = []
    for delta in deltas:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    last = {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
    out.append(b"data: " + json.dumps(last, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


SSE_BODY = _sse_events()


def kserve_body(name: str) -> bytes:
    """A KServe v2 response for model ``name``."""
    return json.dumps(
        {
            "model_name": name,
            "id": "bench",
            "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}],
        },
        separators=(",", ":"),
    ).encode()


def route(method: bytes, path: bytes, body: bytes) -> tuple[int, bytes, bytes]:
    """(status, content type, body) for a request; ``text/event-stream`` means send chunked SSE."""
    path = path.split(b"?", 1)[0]
    if method == b"POST":
        if path == b"/v1/chat/completions":
            if b'"stream"' in body:
                try:
                    if json.loads(body).get("stream") is True:
                        return 200, b"text/event-stream", SSE_BODY
                except ValueError:
                    return 400, b"application/json", b'{"error":"invalid json"}'
            return 200, b"application/json", COMPLETION
        if path == b"/v1/embeddings":
            return 200, b"application/json", EMBEDDING
        if path.startswith(b"/v2/models/") and path.endswith(b"/infer"):
            name = path[len(b"/v2/models/") : -len(b"/infer")].decode("latin-1")
            if name and "/" not in name:
                return 200, b"application/json", kserve_body(name)
    elif method == b"GET":
        if path == b"/healthz":
            return 200, b"application/json", b'{"status":"ok"}'
        if path == b"/v1/models":
            return 200, b"application/json", MODELS
    return 404, b"application/json", b'{"error":"not found"}'


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}


def raw_response(status: int, ctype: bytes, body: bytes, keep_alive: bool) -> bytes:
    """The full HTTP/1.1 response, chunked for SSE."""
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n" % (status, _REASONS.get(status, b"X"), ctype)
    if not keep_alive:
        head += b"connection: close\r\n"
    if ctype == b"text/event-stream":
        chunks = [b"%x\r\n%s\r\n" % (len(ev) + 2, ev + b"\n\n") for ev in body.split(b"\n\n") if ev]
        return (
            head
            + b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"".join(chunks)
            + b"0\r\n\r\n"
        )
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


class RawProtocol(asyncio.Protocol):
    """One client connection: parse with httptools, answer each complete request at once."""

    __slots__ = ("body", "parser", "transport", "url")

    def __init__(self) -> None:
        import httptools

        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:  # noqa: BLE001 - a malformed request closes the connection
            if self.transport is not None:
                self.transport.write(
                    raw_response(400, b"application/json", b'{"error":"bad request"}', False)
                )
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        status, ctype, body = route(method, self.url, b"".join(self.body))
        self.url = b""
        self.body = []
        assert self.transport is not None
        self.transport.write(raw_response(status, ctype, body, keep_alive))
        if not keep_alive:
            self.transport.close()


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same routes as a pure ASGI app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    status, ctype, body = route(scope["method"].encode(), scope["path"].encode(), b"".join(chunks))
    if ctype == b"text/event-stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
        for ev in body.split(b"\n\n"):
            if ev:
                await send({"type": "http.response.body", "body": ev + b"\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def serve_raw(host: str, port: int) -> None:
    """Serve the raw protocol in this process until SIGTERM or SIGINT."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(RawProtocol, sock=_listen(host, port))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--impl", choices=("raw", "asgi"), default="raw")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.impl == "asgi":
        import uvicorn

        uvicorn.run(
            "upstream:asgi_app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
            lifespan="on",
            app_dir=os.path.dirname(os.path.abspath(__file__)),
        )
        return 0
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            serve_raw(args.host, args.port)
            os._exit(0)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    if children:
        signal.signal(signal.SIGTERM, forward)
    serve_raw(args.host, args.port)
    forward(signal.SIGTERM, None)
    for child in children:
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
