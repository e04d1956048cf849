"""SIGKILL during a load run: every request that got a response has its audit event afterwards, and
``garrison audit verify`` passes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from tests.gateway.harness import UpstreamStub, base_config, chat, http, running

from garrison.cli.main import main


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_under_load_loses_no_answered_request(tmp_path: Path, workers: int) -> None:
    upstream = UpstreamStub().start()
    config = base_config(upstream.port, tmp_path)
    # a long flush interval: at the kill, most answered requests exist only in the journal
    config["audit"] = {
        "journal_dir": str(tmp_path / "audit"),
        "flush_interval_ms": 5000,
        "batch_size": 100_000,
    }
    if workers > 1:
        config["limits_backend"] = {"type": "sqlite", "path": str(tmp_path / "limits.db")}
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        with running(config, tmp_path, {"user": ["user"]}, workers=workers) as gateway:
            key = gateway.keys["user"]

            def client() -> None:
                while not stop.is_set():
                    try:
                        status, headers, _ = http(
                            gateway.port, "POST", "/v1/chat/completions", body=chat(), key=key
                        )
                    except OSError:
                        return  # the gateway died mid-request: no response, nothing owed
                    if status and "x-garrison-request-id" in headers:
                        with lock:
                            answered.append(headers["x-garrison-request-id"])

            threads = [threading.Thread(target=client) for _ in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(2.0)
            # kill the whole process group: the uvicorn supervisor and every worker, no clean-up
            os.killpg(gateway.process.pid, signal.SIGKILL)
            gateway.process.wait(10)
            stop.set()
            for thread in threads:
                thread.join(15)
    finally:
        upstream.stop()

    assert len(answered) > 50, "the load run was too short to mean anything"
    # recovery: the next start ships the journals; the CLI's store view then has every event
    from garrison.gateway.audit import recover_journals
    from garrison.store import Store

    with Store.open(f"sqlite:///{config['db']}") as store:
        recover_journals(Path(config["audit"]["journal_dir"]), store)
        stored = {r.event.id for r in store.event_records()}
    missing = [event_id for event_id in answered if event_id not in stored]
    assert not missing, f"{len(missing)} answered requests have no audit event"
    assert main(["audit", "verify", "--db", config["db"]]) == 0
