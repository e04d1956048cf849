"""Start-up time of ``garrison --version`` and ``garrison --help``, beside the model-file scanners
people use today (picklescan, modelscan, modelaudit), in the same run.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_startup.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import peers_bin, summary, time_command, write_results

GARRISON = Path(sys.executable).parent / "garrison"
PEER_ENV = {"PROMPTFOO_DISABLE_TELEMETRY": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()

    cases: list[tuple[str, list[str]]] = [
        ("garrison --version", [str(GARRISON), "--version"]),
        ("garrison --help", [str(GARRISON), "--help"]),
    ]
    peers = None if args.no_peers else peers_bin()
    if peers is not None:
        cases += [
            ("picklescan --help", [str(peers / "picklescan"), "--help"]),
            ("modelscan --version", [str(peers / "modelscan"), "--version"]),
            ("modelscan --help", [str(peers / "modelscan"), "--help"]),
            ("modelaudit --version", [str(peers / "modelaudit"), "--version"]),
            ("modelaudit --help", [str(peers / "modelaudit"), "--help"]),
        ]
    results = {name: summary(time_command(argv, runs=args.runs, env=PEER_ENV)) for name, argv in cases}
    base_help = results["garrison --help"]["median"]
    rows = []
    for name, stats in results.items():
        ratio = stats["median"] / base_help
        rows.append(
            [
                name,
                f"{stats['median'] * 1000:.0f}",
                f"{stats['min'] * 1000:.0f}–{stats['max'] * 1000:.0f}",
                f"{ratio:.2f}×",
            ]
        )
    write_results(
        "startup",
        "Start-up time",
        ["command", "median ms", "range ms", "vs garrison --help"],
        rows,
        [
            f"{args.runs} runs per command after 2 warm-up runs, wall clock, output discarded. "
            "Ratios above 1 mean slower than `garrison --help`. Peers are installed in their own "
            "virtual environment (benchmarks/peers.txt)."
        ],
        results,
    )


if __name__ == "__main__":
    main()
