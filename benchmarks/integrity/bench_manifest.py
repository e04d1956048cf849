"""Manifest hashing throughput beside ``sha256sum`` run in parallel over the same files.

Builds a directory of ``--files`` files totalling ``--size`` bytes under ``benchmarks/.work``
(reused between runs), warms the page cache, then times ``build_manifest`` (files mode, and
shards mode when ``--shard-size`` is given) against ``find -print0 | xargs -0 -P $(nproc)
sha256sum``. Reports GB/s and each tool's speed relative to the sha256sum peer (goal for Garrison: >= 0.9);
``openssl dgst -sha256`` is timed the same way when present, since coreutils may not use the CPU's
SHA extensions and OpenSSL (like ``hashlib``) does. Best of ``--repeat``.

Run: ``.venv/bin/python benchmarks/integrity/bench_manifest.py --size 1G --files 16``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from garrison.integrity.manifest import build_manifest

WORK = Path(__file__).resolve().parent.parent / ".work" / "manifest"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4096`` -> bytes (binary units)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(float(text.removesuffix(unit) if unit else text) * _UNITS[unit])


def make_tree(size: int, files: int) -> Path:
    """A directory of ``files`` files of pseudo-random bytes, ``size`` bytes in all (reused)."""
    root = WORK / f"tree-{size}-{files}"
    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    block = os.urandom(1 << 20)
    per_file = size // files
    for i in range(files):
        remaining = per_file + (size - per_file * files if i == files - 1 else 0)
        with (root / f"shard-{i:05d}.bin").open("wb") as f:
            n = 0
            while remaining > 0:
                chunk = block[: min(len(block), remaining)]
                # vary every MiB so no two blocks are equal
                f.write(n.to_bytes(8, "little") + chunk[8:] if len(chunk) > 8 else chunk)
                remaining -= len(chunk)
                n += 1
    stamp.write_text("ok")
    return root


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.endswith(".bin"))


def run_sha256sum(root: Path, jobs: int, tool: tuple[str, ...] = ("sha256sum",)) -> None:
    """``find ROOT -name '*.bin' -print0 | xargs -0 -P jobs -n K sha256sum`` with list argv."""
    count = len(data_files(root))
    per = max(1, math.ceil(count / jobs))
    find = subprocess.Popen(
        ["find", str(root), "-type", "f", "-name", "*.bin", "-print0"], stdout=subprocess.PIPE
    )
    xargs = subprocess.Popen(
        ["xargs", "-0", "-P", str(jobs), "-n", str(per), *tool],
        stdin=find.stdout,
        stdout=subprocess.DEVNULL,
    )
    assert find.stdout is not None
    find.stdout.close()
    if xargs.wait() != 0 or find.wait() != 0:
        raise RuntimeError(f"find | xargs {' '.join(tool)} failed")


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G", help="total bytes (K/M/G suffixes), default 1G")
    ap.add_argument("--files", type=int, default=16, help="number of files, default 16")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is reported")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallelism for both tools")
    ap.add_argument("--shard-size", default="", help="also time shards mode with this shard size")
    ap.add_argument("--algorithm", default="sha256", choices=["sha256", "blake3"])
    args = ap.parse_args()

    size = parse_size(args.size)
    root = make_tree(size, args.files)
    files = data_files(root)
    total = sum(p.stat().st_size for p in files)
    # warm the page cache so both tools read from memory
    for p in files:
        with p.open("rb") as f:
            while f.read(1 << 24):
                pass

    ignore = [".complete"]
    peer = best_of(args.repeat, lambda: run_sha256sum(root, args.jobs))
    rows = [("sha256sum | xargs -P", peer)]
    if shutil.which("openssl"):
        # coreutils' sha256sum may not use the CPU's SHA extensions; OpenSSL (as hashlib) does
        openssl = ("openssl", "dgst", "-sha256")
        rows.append(
            ("openssl dgst | xargs -P", best_of(args.repeat, lambda: run_sha256sum(root, args.jobs, openssl)))
        )
    rows.append(
        (
            f"garrison files ({args.algorithm})",
            best_of(
                args.repeat,
                lambda: build_manifest(root, algorithm=args.algorithm, ignore=ignore, workers=args.jobs),
            ),
        )
    )
    if args.shard_size:
        shard = parse_size(args.shard_size)
        rows.append(
            (
                f"garrison shards {args.shard_size} ({args.algorithm})",
                best_of(
                    args.repeat,
                    lambda: build_manifest(
                        root, algorithm=args.algorithm, shard_size=shard, ignore=ignore, workers=args.jobs
                    ),
                ),
            )
        )

    print(f"{len(files)} files, {total / (1 << 30):.2f} GiB, {args.jobs} jobs, best of {args.repeat}")
    print(f"{'tool':<36} {'seconds':>8} {'GB/s':>7} {'ratio':>6}")
    for name, secs in rows:
        print(f"{name:<36} {secs:8.3f} {total / secs / 1e9:7.3f} {peer / secs:6.2f}")


if __name__ == "__main__":
    main()
