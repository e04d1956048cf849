"""Throughput of the pickle engine on a raw pickle whose payload is large byte strings.

Builds a pickle of ``--size`` bytes (1 GiB by default: a list of 1 MiB BINBYTES8 constants plus a
few small objects) in a temporary directory, memory-maps it and times ``analyze_stream`` and the
full ``pickle_findings`` pass over it. Reports GB/s; it is a measurement, not a test.

Run: ``.venv/bin/python benchmarks/bench_pickle.py [--size BYTES] [--runs N]``.
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import struct
import tempfile
import time
from pathlib import Path

from garrison.core.assets import Asset, AssetKind
from garrison.supplychain.pickle import analyze_stream, pickle_findings

CHUNK = 1 << 20


def build(path: Path, size: int) -> int:
    """Write a protocol 4 pickle of about ``size`` bytes: a list of 1 MiB bytes constants."""
    payload = bytes(range(256)) * (CHUNK // 256)
    count = max(1, size // (CHUNK + 9))
    with path.open("wb") as out:
        out.write(b"\x80\x04]\x94(")
        for _ in range(count):
            out.write(b"\x8e" + struct.pack("<Q", CHUNK))
            out.write(payload)
        out.write(b"e.")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1 << 30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.pkl"
        size = build(path, args.size)
        times: list[float] = []
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            asset = Asset(kind=AssetKind.FILE, locator="large.pkl", size=size, format="pickle")
            for _ in range(args.runs):
                start = time.perf_counter()
                analyses = analyze_stream(mapped)
                findings = list(pickle_findings(analyses, asset=asset, detector="pickle-scanner"))
                times.append(time.perf_counter() - start)
                assert findings == [], findings
                del analyses
        best, median = min(times), statistics.median(times)
        print(f"pickle of {size / 1e9:.3f} GB ({size // (CHUNK + 9)} x 1 MiB BINBYTES8)")
        print(
            f"analyze_stream + pickle_findings: best {best * 1e3:.1f} ms ({size / best / 1e9:.1f} GB/s), "
            f"median {median * 1e3:.1f} ms ({size / median / 1e9:.1f} GB/s) over {args.runs} runs"
        )


if __name__ == "__main__":
    main()
