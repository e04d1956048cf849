"""Limits hold under concurrency and across worker processes: 200 parallel requests against a limit
that admits 50 get exactly 50 through, with 1, 2 and 4 gateway workers, on the SQLite backend and
on a real Redis server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.harness import UpstreamStub, base_config, chat, free_port, running

PARALLEL = 200
ADMITTED = 50


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamStub]:
    stub = UpstreamStub().start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (apt-get install redis-server; .ci/run installs it)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


async def _one(port: int, body: bytes, key: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        "content-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


async def _burst(port: int, key: str, count: int) -> list[int]:
    body = json.dumps(chat()).encode()
    start = asyncio.Event()

    async def fire() -> int:
        await start.wait()
        return await _one(port, body, key)

    tasks = [asyncio.create_task(fire()) for _ in range(count)]
    await asyncio.sleep(0.05)
    start.set()
    return await asyncio.gather(*tasks)


def _config(upstream: UpstreamStub, tmp: Path, backend: dict[str, Any]) -> dict[str, Any]:
    config = base_config(upstream.port, tmp)
    config["limits_backend"] = backend
    config["limits"] = [
        {
            "name": "fifty",
            "per": "global",
            "match": {"routes": ["chat"]},
            "requests": {"limit": ADMITTED, "window": "1h"},
        }
    ]
    return config


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_exactly_the_limit_is_admitted(
    upstream: UpstreamStub, tmp_path: Path, redis_url: str, backend: str, workers: int
) -> None:
    if backend == "sqlite":
        spec: dict[str, Any] = {"type": "sqlite", "path": str(tmp_path / "limits.db")}
    else:
        spec = {"type": "redis", "url": redis_url, "key_prefix": f"garrison:test:{tmp_path.name}:"}
    config = _config(upstream, tmp_path, spec)
    with running(config, tmp_path, {"user": ["user"]}, workers=workers) as gateway:
        statuses = asyncio.run(_burst(gateway.port, gateway.keys["user"], PARALLEL))
        assert statuses.count(200) == ADMITTED, sorted(set(statuses))
        assert statuses.count(429) == PARALLEL - ADMITTED
        # and the limit stays spent: one more request is refused
        assert asyncio.run(_burst(gateway.port, gateway.keys["user"], 1)) == [429]


@pytest.mark.slow
def test_several_workers_with_the_memory_backend_are_refused(upstream: UpstreamStub, tmp_path: Path) -> None:
    from garrison.cli.main import main

    config = _config(upstream, tmp_path, {"type": "memory"})
    import yaml

    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        main(["gateway", "serve", "--config", str(path), "--workers", "2", "--port", str(free_port())]) == 2
    )
