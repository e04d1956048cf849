"""Dataset chunk-digest throughput beside ``sha256sum`` and a whole-file ``hashlib`` SHA-256.

Writes a CSV of ``--size`` bytes (a 16 MiB block of random rows, ~70 bytes each, repeated) into a
temporary directory, warms the page cache, then times :func:`chunk_digests` (content-defined
chunks, one SHA-256 per chunk), ``sha256sum`` on the same file and ``hashlib.sha256`` over the
whole file, best of ``--repeat``. Prints MB/s (decimal) and each tool's speed relative to
``sha256sum``; ``--json PATH`` also writes the numbers. The file is deleted afterwards.

Run: ``.venv/bin/python benchmarks/integrity/bench_datasets.py --size 512M``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_manifest import best_of

from garrison.integrity.datasets import chunk_digests

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_BLOCK = 16 << 20


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4096`` -> bytes (binary units)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(float(text.removesuffix(unit) if unit else text) * _UNITS[unit])


def make_csv(path: Path, size: int, seed: int = 1) -> None:
    """A CSV of exactly ``size`` bytes: a header, then a block of random rows repeated."""
    rng = random.Random(seed)
    rows, n = [], 0
    while n < _BLOCK:
        row = (
            f"{len(rows)},user{rng.randrange(10**7)},{rng.random():.6f},"
            f"{rng.choice(['red', 'green', 'blue'])},"
            f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},"
            f"{rng.randrange(10**9)}\n"
        ).encode()
        rows.append(row)
        n += len(row)
    block = b"".join(rows)
    with path.open("wb") as f:
        left = size
        header = b"id,name,score,colour,day,amount\n"
        f.write(header[:left])
        left -= min(left, len(header))
        while left > 0:
            f.write(block[:left])
            left -= min(left, len(block))


def read_all(path: Path) -> None:
    with path.open("rb", buffering=0) as f:
        while f.read(_BLOCK):
            pass


def hashlib_whole(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(_BLOCK)
    mv = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(mv[:n])
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G", help="file size (K/M/G suffixes), default 1G")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is reported")
    ap.add_argument("--avg-chunk", default="", help="average chunk size (default: chosen from the size)")
    ap.add_argument("--algorithm", default="sha256", choices=["sha256", "blake3"])
    ap.add_argument("--dir", default=None, help="where to write the temporary file (default: $TMPDIR)")
    ap.add_argument("--json", default="", help="also write the results as JSON to this path")
    args = ap.parse_args()

    size = parse_size(args.size)
    avg = parse_size(args.avg_chunk) if args.avg_chunk else None
    with tempfile.TemporaryDirectory(prefix="garrison-bench-", dir=args.dir) as tmp:
        path = Path(tmp) / "data.csv"
        make_csv(path, size)
        read_all(path)  # warm the page cache so every tool reads from memory
        index = chunk_digests(path, algorithm=args.algorithm, avg_chunk=avg)
        rows = [
            (
                "sha256sum",
                best_of(
                    args.repeat,
                    lambda: subprocess.run(["sha256sum", str(path)], check=True, capture_output=True),
                ),
            ),
            ("hashlib sha256 (whole file)", best_of(args.repeat, lambda: hashlib_whole(path))),
            (
                f"garrison chunk_digests ({args.algorithm})",
                best_of(args.repeat, lambda: chunk_digests(path, algorithm=args.algorithm, avg_chunk=avg)),
            ),
        ]

    peer = rows[0][1]
    print(
        f"{size / 1e6:,.0f} MB CSV, {index.rows:,} rows, {len(index.units):,} chunks "
        f"(avg {index.avg_chunk:,} B), {os.cpu_count()} CPUs, best of {args.repeat}"
    )
    print(f"{'tool':<36} {'seconds':>8} {'MB/s':>8} {'ratio':>6}")
    for name, secs in rows:
        print(f"{name:<36} {secs:8.3f} {size / secs / 1e6:8.0f} {peer / secs:6.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "size": size,
                    "rows": index.rows,
                    "chunks": len(index.units),
                    "avg_chunk": index.avg_chunk,
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                    "repeat": args.repeat,
                    "results": [
                        {"tool": n, "seconds": s, "mb_per_s": size / s / 1e6, "ratio": peer / s}
                        for n, s in rows
                    ],
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
