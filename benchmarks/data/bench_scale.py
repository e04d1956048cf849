"""Scanning a large generated CSV for personal data and secrets: throughput and peak memory.

Writes a CSV of ``--size`` bytes (default 1G) under a temporary directory: an id, a name, an e-mail,
a phone number, a card number (one row in 50), a free-text comment and an amount, generated
deterministically without Faker so the file is cheap to make. Then runs
``garrison scan data FILE --no-store --format json`` as a child process and reports wall time,
MB/s and the child's peak resident memory (``ru_maxrss`` of the child, the kernel's high-water mark),
and the findings it produced. The issue's acceptance: a 5 GB CSV scanned with peak memory under 1 GB.

Run: ``.venv/bin/python benchmarks/data/bench_scale.py --size 1G`` (``--json PATH`` writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_WORDS = [
    "the",
    "model",
    "was",
    "trained",
    "on",
    "logs",
    "from",
    "last",
    "quarter",
    "and",
    "the",
    "results",
    "look",
    "fine",
    "overall",
]


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4096`` -> bytes (binary units)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    return int(float(text.removesuffix(unit) if unit else text) * _UNITS[unit])


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def make_csv(path: Path, size: int, seed: int = 1) -> int:
    """Write about ``size`` bytes of rows; return the number of rows."""
    rng = random.Random(seed)
    rows = 0
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id,name,email,phone,card,comment,amount\n")
        while written < size:
            lines = []
            for _ in range(10_000):
                first = rng.choice(["Ana", "Ben", "Chloe", "Dev", "Eva", "Femi", "Gus", "Hana"])
                last = rng.choice(["Smith", "Okafor", "Nguyen", "Garcia", "Muller", "Rossi"])
                card = _luhn_card(rng) if rows % 50 == 0 else ""
                comment = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 14)))
                phone = f"+1 212 555 {rng.randrange(10_000):04d}"
                lines.append(
                    f"{rows},{first} {last},{first.lower()}.{last.lower()}{rows}@example.com,{phone},"
                    f"{card},{comment},{rng.randrange(100_000) / 100}\n"
                )
                rows += 1
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G", help="CSV size (K/M/G suffixes), default 1G")
    ap.add_argument("--dir", default=None, help="where to write the CSV (default: $TMPDIR)")
    ap.add_argument("--json", default="", help="also write the results as JSON to this path")
    args = ap.parse_args()
    garrison = Path(sys.executable).with_name("garrison")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "big.csv"
        t0 = time.perf_counter()
        rows = make_csv(path, parse_size(args.size))
        size = path.stat().st_size
        print(f"wrote {size / 1e6:,.0f} MB, {rows:,} rows in {time.perf_counter() - t0:.0f} s")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(garrison), "scan", "data", str(path), "--no-store", "--no-progress", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode not in (0, 1):
            sys.exit(f"garrison failed ({done.returncode}): {done.stderr}")
        report = json.loads(done.stdout)
    findings = [(f["rule"]["id"], f["location"].get("column")) for f in report["findings"]]
    result = {
        "bytes": size,
        "rows": rows,
        "seconds": round(seconds, 1),
        "mb_per_s": round(size / seconds / 1e6, 2),
        "peak_rss_mib": round(max(peak_kib, before) / 1024, 1),
        "findings": findings,
        "cpus": os.cpu_count(),
    }
    print(
        f"garrison scan data: {seconds:,.1f} s, {result['mb_per_s']} MB/s, "
        f"peak RSS {result['peak_rss_mib']} MiB, findings {findings}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
