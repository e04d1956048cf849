"""Helpers shared by the benchmarks: the peer environment, timing, and writing result tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "results"
PEERS_VENV = WORK / "peers"


def peers_bin() -> Path | None:
    """The peers' bin directory, installing them on first use; ``None`` if they cannot be installed."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    wanted = (HERE / "peers.txt").read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return PEERS_VENV / "bin"
    print("installing peer tools into benchmarks/.work/peers (once) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(HERE / "peers.txt"),
            ],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        print(f"peer tools could not be installed ({exc}); peers are left out", file=sys.stderr)
        return None
    stamp.write_text(wanted)
    return PEERS_VENV / "bin"


def time_command(
    argv: Sequence[str], *, runs: int, warmup: int = 2, env: dict[str, str] | None = None
) -> list[float]:
    """Wall-clock seconds of ``runs`` runs of ``argv`` (output discarded), after ``warmup`` runs."""
    full_env = {**os.environ, **(env or {})}
    timings = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(
            list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env, check=True
        )
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    return timings


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def machine() -> str:
    """One line describing where the numbers were measured."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def write_results(
    name: str,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    data: object,
) -> Path:
    """Write ``results/NAME.md`` (a table the docs quote) and ``results/NAME.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"Measured on {machine()}.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    lines.append("")
    lines.extend(notes)
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(path.read_text())
    return path
