"""Parallel scans report exactly what sequential scans do, and survive a dying worker."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from garrison.core.config import Settings
from garrison.detectors import default_registry
from garrison.engine import parallel
from garrison.engine.runner import scan_path

EVIL = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."

pytestmark = pytest.mark.skipif(not parallel.fork_available(), reason="workers are forked")


def test_a_parallel_scan_equals_a_sequential_one(tmp_path: Path) -> None:
    for i in range(90):
        name = tmp_path / f"d{i % 7}" / f"m{i}.pkl"
        name.parent.mkdir(exist_ok=True)
        name.write_bytes(EVIL if i % 5 == 0 else pickle.dumps({"layer": i, "w": [0.5] * i}))
    (tmp_path / "d0" / "broken.pkl").write_bytes(EVIL[:20])
    registry = default_registry()
    one = scan_path(tmp_path, settings=Settings(store=False, jobs=1), registry=registry)
    two = scan_path(tmp_path, settings=Settings(store=False, jobs=3), registry=registry)
    assert [f.fingerprint for f in one.findings] == [f.fingerprint for f in two.findings]
    assert one.assets == two.assets
    assert one.errors == two.errors
    # 18 payloads, and the truncated one: its call comes before the break, so it counts too.
    assert sum(f.rule.id == "GAR-PKL-001" for f in two.findings) == 19


def test_a_worker_that_dies_leaves_its_batches_to_the_parent() -> None:
    parent = os.getpid()

    def work(batch: range) -> list[int]:
        if os.getpid() != parent:
            os._exit(3)  # a worker killed mid-scan, for example for memory
        return list(batch)

    results: dict[int, list[int]] = {}
    batches = parallel.split(40, [10] * 40, 2)
    parallel.run_batches(batches, work, jobs=2, done=results.__setitem__)
    assert sorted(x for r in results.values() for x in r) == list(range(40))


def test_split_keeps_order_and_balances_bytes() -> None:
    sizes = [1] * 50 + [10**9] + [1] * 49
    ranges = parallel.split(100, sizes, 2)
    assert [i for r in ranges for i in r] == list(range(100))
    assert [50] in [list(r) for r in ranges]
    assert parallel.choose_jobs(0, 10) == 1
    assert parallel.choose_jobs(5, 1) == 5
