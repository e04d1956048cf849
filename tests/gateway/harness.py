"""A real gateway for end-to-end tests: an upstream stub in a thread, ``garrison gateway serve`` in a
subprocess, keys made with the real CLI code, and raw HTTP clients that can send what curl won't."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.http_server import ThreadedHttpServer, free_port

from garrison.core.events import Event
from garrison.gateway.keys import create_key
from garrison.store import Store

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "stub",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello there"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


PLANTED_SECRET = (
    "Here it is:\n-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\nUse it carefully."
)
"""What the stub answers to 'recite the deploy key': a secret only the model knows."""


class UpstreamStub(ThreadedHttpServer):
    """An OpenAI-compatible and KServe v2 model server on a raw asyncio socket, in a thread.

    - ``POST /v1/chat/completions``: a fixed completion (SSE chunks when ``"stream": true``), with
      the request's last user message echoed in ``echo`` so tests can see what reached it; a last
      message ``say: TEXT`` makes TEXT the answer (streamed three characters at a time), and
      ``recite the deploy key`` makes :data:`PLANTED_SECRET` the answer;
    - ``POST /v2/models/{name}/infer`` and ``POST /predict``: class probabilities ``[0.1, 0.7, 0.2]``
      per input row;
    - ``POST /slow``: answers after 5 s.
    Every request's headers and body are kept in ``seen``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes]] = []

    async def respond(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        self.seen.append((head, body))
        await self._answer(head.split(b" ", 2)[1], body, writer)

    async def _answer(self, path: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        if path == b"/slow":
            await asyncio.sleep(5)
        if path.startswith(b"/v1/chat/completions"):
            messages = request.get("messages") or [{}]
            last = messages[-1].get("content", "")
            said = last[5:] if isinstance(last, str) and last.startswith("say: ") else None
            if last == "recite the deploy key":
                said = PLANTED_SECRET
            answer = dict(COMPLETION, echo=last)
            if said is not None:
                answer["choices"] = [
                    {"index": 0, "message": {"role": "assistant", "content": said}, "finish_reason": "stop"}
                ]
            if request.get("stream"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                words = [said[i : i + 3] for i in range(0, len(said), 3)] if said else ["hello", " there"]
                events = [{"choices": [{"index": 0, "delta": {"content": word}}]} for word in words] + [
                    {"choices": [], "usage": COMPLETION["usage"]}
                ]
                for event in events:
                    data = b"data: " + json.dumps(event).encode() + b"\n\n"
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                done = b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                await writer.drain()
                return
            payload = json.dumps(answer).encode()
        else:
            rows = request.get("inputs") or request.get("instances") or [[0.0]]
            count = len(rows) if isinstance(rows, list) else 1
            payload = json.dumps({"predictions": [[0.1, 0.7, 0.2]] * count}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload)
            + payload
        )
        await writer.drain()


def base_config(upstream_port: int, tmp: Path, **overrides: Any) -> dict[str, Any]:
    """A gateway.yaml with a chat route, an ML route, roles and limits, as a dict."""
    config: dict[str, Any] = {
        "db": str(tmp / "gw.db"),
        "audit": {"journal_dir": str(tmp / "audit"), "flush_interval_ms": 20},
        "auth": {"key_refresh_seconds": 0},
        "roles": {
            "user": {"allow": [{"routes": ["chat"], "models": ["gpt-*", "stub"], "actions": ["invoke"]}]},
            "scorer": {"allow": [{"routes": ["iris", "slow"], "actions": ["invoke"]}]},
            "admin": {"allow": [{"actions": ["admin"]}]},
        },
        "limits_backend": {"type": "memory"},
        "limits": [],
        "routes": [
            {
                "name": "chat",
                "path": "/v1/chat/completions",
                "kind": "openai",
                "upstream": f"http://127.0.0.1:{upstream_port}",
                "input_filters": {"deny": ["ignore (all )?previous instructions"]},
                "validation": {"max_body_bytes": 65536, "max_json_depth": 16},
            },
            {
                "name": "iris",
                "path": "/predict",
                "kind": "json",
                "model": "iris",
                "upstream": f"http://127.0.0.1:{upstream_port}",
                "validation": {"features": {"shape": [None, 4], "min": 0, "max": 10}},
            },
            {
                "name": "slow",
                "path": "/slow",
                "kind": "json",
                "model": "slow",
                "timeout_seconds": 0.5,
                "upstream": f"http://127.0.0.1:{upstream_port}",
            },
        ],
    }
    config.update(overrides)
    return config


@dataclass
class Gateway:
    """A running ``garrison gateway serve``."""

    port: int
    config_path: Path
    db: Path
    process: subprocess.Popen[bytes]
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def events(self) -> list[Event]:
        """Every ``gateway.request`` event in the store (after the journal was shipped)."""
        with contextlib.closing(Store.open(f"sqlite:///{self.db}")) as store:
            return [r.event for r in store.event_records() if r.event.type == "gateway.request"]


def make_keys(
    db: Path, roles: dict[str, list[str]], scopes: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """Keys by name, created in the gateway's store the way ``garrison keys create`` does."""
    keys = {}
    with contextlib.closing(Store.open(f"sqlite:///{db}")) as store:
        for name, granted in roles.items():
            keys[name] = create_key(
                store, name=name, roles=granted, scopes=(scopes or {}).get(name, ()), actor="test"
            ).key
    return keys


def start_gateway(
    config: dict[str, Any], tmp: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Gateway:
    """Write the config, start the gateway and wait until /readyz answers 200."""
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp / "gateway.log", "ab") as log:
        process = _spawn(path, port, workers, log, env)
    gateway = Gateway(port=port, config_path=path, db=Path(config["db"]), process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {(tmp / 'gateway.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            status, _, _ = raw_request(port, b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n", timeout=1)
            if status == 200:
                return gateway
        time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"gateway did not become ready: {(tmp / 'gateway.log').read_text()[-2000:]}")


def _spawn(
    path: Path, port: int, workers: int, log: Any, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "garrison",
            "gateway",
            "serve",
            "--config",
            str(path),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: tests may SIGKILL the whole gateway
    )


def raw_request(
    port: int, data: bytes, *, timeout: float = 10, pause: float = 0.0
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; return status, headers (lower-case names) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if pause:
            head, _, rest = data.partition(b"\r\n\r\n")
            sock.sendall(head + b"\r\n\r\n" + rest[:1])
            time.sleep(pause)
        else:
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return status, headers, body


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return body.endswith(b"0\r\n\r\n")


def http(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One ordinary request over a fresh connection."""
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    lines = [
        f"{method} {path} HTTP/1.1",
        "host: gateway",
        "connection: close",
        f"content-length: {len(data)}",
    ]
    merged = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        merged["authorization"] = f"Bearer {key}"
    lines += [f"{k}: {v}" for k, v in merged.items()]
    return raw_request(port, "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + data)


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def wait_for_events(gateway: Gateway, count: int, timeout: float = 10.0) -> list[Event]:
    """The request events, once at least ``count`` reached the store."""
    deadline = time.monotonic() + timeout
    events = gateway.events()
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        events = gateway.events()
    return events


@contextlib.contextmanager
def running(
    config: dict[str, Any], tmp: Path, keys: dict[str, list[str]], **kwargs: Any
) -> Iterator[Gateway]:
    made = make_keys(Path(config["db"]), keys, kwargs.pop("scopes", None))
    gateway = start_gateway(config, tmp, **kwargs)
    gateway.keys = made
    try:
        yield gateway
    finally:
        gateway.stop()
