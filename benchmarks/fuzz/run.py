"""Fuzz the pickle, zip and GGUF parsers for a fixed time and record the results.

    .venv/bin/python benchmarks/fuzz/run.py --target all --minutes 10 [--seed 1]

Inputs come from the structured Hypothesis strategies in ``tests/fuzz/strategies.py`` (the same
ones the fuzz smoke tests use) and are judged by ``tests/fuzz/harness.py``: a crash is any
exception other than a GarrisonError from a parser, or a "Garrison bug" error record (or an
escaped exception) from a whole scan; a hang is an input past the per-input wall-clock limit; a
memory failure is an input during which resident memory grows past the limit. Hypothesis runs in
chunks with seeds drawn from ``--seed``, no example database, no deadline and no shrinking; each
new failure is minimized here (bytes removed while the same failure remains, time-bounded) and
saved under ``benchmarks/.work/fuzz/crashes/``. Results go to ``benchmarks/results/fuzz.json``
(merged per target, so targets can be run one at a time) and ``benchmarks/results/fuzz.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.fuzz; garrison comes from the installed package

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from tests.fuzz.harness import MEMORY_LIMIT, TIMEOUT_PER_MIB, TIMEOUT_S, Failure, Harness  # noqa: E402
from tests.fuzz.strategies import TARGETS, inputs_for  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "fuzz"
RESULTS = ROOT / "benchmarks" / "results"
CHUNK = 200
"""Examples per Hypothesis run; each run gets a fresh seed and the clock is checked between runs."""
MINIMIZE_S = 60.0


def minimize(harness: Harness, failure: Failure, budget_s: float = MINIMIZE_S) -> bytes:
    """The smallest input found (removing byte ranges) that still fails with the same signature."""
    data = failure.data
    stop = time.monotonic() + budget_s

    def same(candidate: bytes) -> bool:
        again = harness.run(candidate, record=False)
        return again is not None and again.signature == failure.signature

    chunk = max(len(data) // 2, 1)
    while chunk >= 1 and time.monotonic() < stop:
        at, changed = 0, False
        while at < len(data) and time.monotonic() < stop:
            candidate = data[:at] + data[at + chunk :]
            if candidate and same(candidate):
                data, changed = candidate, True
            else:
                at += chunk
        if not changed:
            chunk //= 2
    return data


def fuzz(target: str, minutes: float, seed: int, *, timeout: float, system: bool) -> dict[str, Any]:
    """Fuzz one target for ``minutes``; its result record."""
    print(f"== {target}: building seed pools ...", flush=True)
    strategy = inputs_for(target, full=True)
    harness = Harness(target, WORK / target, timeout=timeout, system=system)
    crashes = WORK / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    known: dict[str, dict[str, Any]] = {}
    rng = random.Random(f"{seed}-{target}")
    started = time.monotonic()
    deadline = started + minutes * 60
    next_report = started + 30

    def body(data: bytes) -> None:
        nonlocal next_report
        if time.monotonic() >= deadline:
            return
        failure = harness.run(data)
        if failure is not None:
            entry = known.get(failure.signature)
            if entry is not None:
                entry["count"] += 1
            else:
                known[failure.signature] = _record(harness, failure, crashes, len(known))
        if time.monotonic() >= next_report:
            next_report += 30
            s = harness.stats
            print(
                f"   {target}: {time.monotonic() - started:5.0f} s, {s.executed} inputs, "
                f"{len(known)} distinct failures, slowest {s.max_seconds:.2f} s",
                flush=True,
            )

    chunks = 0
    while time.monotonic() < deadline:
        run = settings(
            max_examples=CHUNK,
            database=None,
            deadline=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )(given(strategy)(body))
        hypothesis.seed(rng.getrandbits(64))(run)()
        chunks += 1
    elapsed = time.monotonic() - started
    s = harness.stats
    (WORK / f"slowest-{target}.bin").write_bytes(s.slowest)
    return {
        "target": target,
        "minutes": minutes,
        "seconds": round(elapsed, 1),
        "inputs": s.executed,
        "inputs_per_s": round(s.executed / elapsed, 1),
        "hypothesis_runs": chunks,
        "busy_seconds": round(s.busy_seconds, 1),
        "failures": s.failures,
        "distinct_failures": list(known.values()),
        "max_seconds_per_input": round(s.max_seconds, 3),
        "slowest_input_bytes": len(s.slowest),
        "largest_input_bytes": s.largest_input,
        "max_input_rss_growth_mib": round(s.max_rss_growth / 2**20, 1),
        "max_rss_during_input_mib": round(s.max_rss / 2**20, 1),
        "timeout_s": timeout,
        "timeout_per_mib_s": TIMEOUT_PER_MIB,
        "memory_limit_mib": MEMORY_LIMIT // 2**20,
        "system_scan": system,
        "outcomes": dict(s.outcomes.most_common()),
        "findings": dict(s.findings.most_common()),
    }


def _record(harness: Harness, failure: Failure, crashes: Path, number: int) -> dict[str, Any]:
    print(f"   !! new failure: {failure.signature} ({len(failure.data)} bytes); minimizing", flush=True)
    small = minimize(harness, failure)
    stem = crashes / f"{failure.target}-{number}-{failure.kind}"
    stem.with_suffix(".bin").write_bytes(small)
    stem.with_suffix(".txt").write_text(f"{failure.signature}\n\n{failure.detail}\n")
    print(f"   !! minimized to {len(small)} bytes: {stem.with_suffix('.bin')}", flush=True)
    return {
        "kind": failure.kind,
        "signature": failure.signature,
        "count": 1,
        "input_bytes": len(failure.data),
        "minimized_bytes": len(small),
        "reproducer": str(stem.with_suffix(".bin").relative_to(ROOT)),
        "detail": failure.detail[-2000:],
    }


def _machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory = int(meminfo.read_text().split()[1]) // 1024
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    import garrison

    return {
        "machine": platform.machine(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_mib": memory,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hypothesis": hypothesis.__version__,
        "garrison": garrison.__version__,
        "commit": commit,
    }


def write_results(runs: list[dict[str, Any]], seed: int) -> None:
    """Merge ``runs`` into fuzz.json (by target) and rewrite fuzz.md."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fuzz.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    targets = {t["target"]: t for t in old.get("targets", [])}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for run in runs:
        targets[run["target"]] = {**run, "date": now, "seed": seed}
    data = {
        "machine": _machine(),
        "targets": [targets[t] for t in TARGETS if t in targets],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "fuzz.md").write_text(render_markdown(data))


def render_markdown(data: dict[str, Any]) -> str:
    """The human summary of fuzz.json."""
    m = data["machine"]
    lines = [
        "# Parser fuzzing",
        "",
        f"Machine: {m['machine']}, {m['cpus']} cores ({m['cpu'] or 'unknown CPU'}), "
        f"{m['memory_mib'] // 1024} GiB, {m['system']}; Python {m['python']}, Hypothesis {m['hypothesis']}, "
        f"garrison {m['garrison']} (commit {m['commit'] or 'unknown'}). The machine was shared with other "
        "jobs during the run, so rates and times are pessimistic.",
        "",
        "| target | date | duration | inputs | inputs/s | failures | max time/input | max RSS growth/input "
        "| max RSS during an input |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in data["targets"]:
        cells = [
            t["target"],
            t["date"],
            f"{t['seconds'] / 60:.1f} min",
            str(t["inputs"]),
            str(t["inputs_per_s"]),
            f"{t['failures']} ({len(t['distinct_failures'])} distinct)",
            f"{t['max_seconds_per_input']:.2f} s ({t['slowest_input_bytes']} B input)",
            f"{t['max_input_rss_growth_mib']} MiB",
            f"{t['max_rss_during_input_mib']} MiB",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Rerun: `.venv/bin/python benchmarks/fuzz/run.py --target all --minutes 10 --seed 1` "
        "(or one `--target` at a time; results are merged per target). The test suite runs the same "
        "strategies for a few hundred inputs each (`tests/fuzz/test_parsers_fuzz.py`).",
        "",
        "Inputs are built by the structured Hypothesis strategies of `tests/fuzz/strategies.py`: pickle "
        "opcode programs from the `pickletools` table with plausible arguments (and lying lengths), "
        "streams, deep nesting up to past the stack limit, `pickle.dumps` of nested data, and mutations "
        "(field edits, bit flips, truncation, deletion, duplication, splicing) of those and of the malicious "
        "and benign samples; zips written byte by byte with lies in every header field (names, flags, "
        "methods, CRCs, sizes, offsets, zip64 extras, counts, comments), zips nested in zips well past "
        "the depth limit, gzip/bzip2/xz/tar.gz members, 3 and 16 MiB deflate bombs, and field-aware "
        "mutations of real zips (zipfile, torch.save, torch.jit.save, numpy.savez); GGUF v1 to v3 files "
        "in both byte orders with every metadata type, arrays, chat templates and tensor tables, then "
        "field-aware mutations of counts, lengths, types and offsets.",
        "",
        "Each input goes through the parser's own entry points and then through a whole `scan_path` "
        "with every built-in detector. Limits per input: "
        f"{TIMEOUT_S:.0f} s wall clock plus {TIMEOUT_PER_MIB:.0f} s per MiB of input (past it, a hang), "
        f"{MEMORY_LIMIT // 2**20} MiB growth of resident memory (more fails). The fuzzing process holds "
        "about 400 MiB before any input (torch and scikit-learn build the seed pools), hence the RSS "
        "column; the largest growth is the analysis of a pickle of a million nested tuples, bounded by "
        "the machine's stack and memo limits. A crash is any exception other than a GarrisonError "
        "(GgufError for `parse_gguf`) from a parser, or an error record asking to report a Garrison bug "
        "from a scan.",
        "",
        "Bombs and deep nesting end in resource-limit findings, proven by tests: "
        "`tests/engine/test_archives.py` (a deflate zip bomb: GAR-ARC-201; zips nested past the depth "
        "limit: GAR-ARC-202; the member budget: GAR-ARC-202) and `tests/engine/test_fuzz_regressions.py` "
        "(gzip and bzip2 stream bombs: GAR-ARC-201; a bomb in a zip in a zip: GAR-ARC-201 at its level; "
        "gzip nested past the depth limit: GAR-ARC-202; a bomb inside a PyTorch checkpoint: GAR-SCAN-201; "
        "a directory of more than 100 000 members: GAR-ARC-202 and GAR-SCAN-201; a pickle past the "
        "million-item stack limit: GAR-PKL-201).",
        "",
    ]
    for t in data["targets"]:
        lines.append(f"## {t['target']}")
        lines.append("")
        if t["distinct_failures"]:
            for f in t["distinct_failures"]:
                lines.append(
                    f"- **{f['kind']}** `{f['signature']}`: seen {f['count']} times; minimized reproducer "
                    f"{f['minimized_bytes']} bytes (`{f['reproducer']}`)"
                )
        else:
            lines.append("- no failures")
        outcomes = ", ".join(f"{k} {v}" for k, v in list(t["outcomes"].items())[:14])
        findings = ", ".join(f"{k} {v}" for k, v in list(t["findings"].items())[:20])
        lines += [f"- parser outcomes: {outcomes}", f"- findings from the scans: {findings}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--minutes", type=float, default=10.0, help="per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per input")
    parser.add_argument("--no-system", action="store_true", help="parsers only, no whole scan_path")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/results")
    args = parser.parse_args(argv)
    targets = TARGETS if args.target == "all" else (args.target,)
    runs = []
    for target in targets:
        run = fuzz(target, args.minutes, args.seed, timeout=args.timeout, system=not args.no_system)
        print(
            f"== {target}: {run['inputs']} inputs in {run['seconds']} s ({run['inputs_per_s']}/s), "
            f"{run['failures']} failures ({len(run['distinct_failures'])} distinct), "
            f"slowest {run['max_seconds_per_input']} s",
            flush=True,
        )
        runs.append(run)
        if not args.no_write:
            write_results([run], args.seed)
    return 1 if any(r["failures"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
