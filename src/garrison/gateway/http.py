"""ASGI plumbing shared by the gateway's request handlers: reading bodies under limits, checking
paths, and sending responses. Pure ASGI, no framework."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from garrison.gateway.types import Denied
from garrison.gateway.validate import check_body_size, check_content_length

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")
NO_STORE = (b"cache-control", b"no-store")

_OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
_ENCODED_TRICKS = (b"%2e", b"%2f", b"%5c", b"%00", b"%25")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def check_request_line(scope: Scope) -> None:
    """Refuse paths and headers that try to reach one route while looking like another.

    - percent-encoded dots, slashes, backslashes, NULs and percent signs in the raw path (servers
      and proxies disagree on whether to decode them before routing);
    - dot segments, empty segments and backslashes in the decoded path;
    - method-override headers (``X-HTTP-Method-Override`` and relatives): the method routed on is
      the method on the request line, and a header that claims another is an attack or a bug.
    """
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    lowered = bytes(raw).lower()
    if any(trick in lowered for trick in _ENCODED_TRICKS):
        raise Denied(400, "encoded_path")
    path: str = scope["path"]
    if (
        not path.startswith("/")
        or "//" in path
        or "\\" in path
        or "\x00" in path
        or "/./" in path
        or "/../" in path
        or path.endswith(("/.", "/.."))
    ):
        raise Denied(400, "dot_segment_path")
    for key, _ in scope["headers"]:
        if key in _OVERRIDE_HEADERS:
            raise Denied(400, "method_override")


async def read_body(receive: Receive, scope: Scope, *, limit: int, timeout: float) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes or a body slower than ``timeout``.

    A declared ``Content-Length`` over the limit is refused before a byte is read; the body is cut
    off as soon as it grows past the limit, whatever it declared.
    """
    check_content_length(scope["headers"], limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    raise Denied(400, "client_disconnected")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    check_body_size(size, limit)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise Denied(408, "body_timeout") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def error_body(denied: Denied) -> bytes:
    """The caller-facing body of a denial: the status's generic text, nothing internal."""
    return json.dumps({"error": {"code": denied.status, "message": denied.public}}).encode()


async def send_response(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send a complete response in two messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
