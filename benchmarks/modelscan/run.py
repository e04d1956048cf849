"""Garrison beside modelscan, picklescan, fickling and modelaudit, in one run on one corpus.

1. Builds the corpus (``corpus.py``: malicious and benign files in every format Garrison reads).
2. Runs every tool on every file through its Python API in a worker process inside the tool's own
   virtual environment (``worker.py``), one file at a time, with a per-file timeout. Records whether
   the tool flagged the file, reported an error, skipped it, crashed or timed out.
3. With ``--large``: times each tool's command line on a ~1 GB PyTorch checkpoint, a ~1 GB raw
   pickle of large byte strings and a directory of 1,000 small models (median of ``--runs``), plus
   Garrison's in-process API on the same targets.

Writes ``benchmarks/results/modelscan.json`` and ``benchmarks/results/modelscan.md``.

Run: ``make bench-modelscan`` or ``.venv/bin/python benchmarks/modelscan/run.py [--large] [--keep]``.
Peers are installed on first use: picklescan and fickling in benchmarks/.work/peers (``peers.txt``,
shared with the other benchmarks), modelscan in benchmarks/.work/peers-modelscan (with ``numpy<2``,
which its NumPy scanner needs, and its h5py extra), modelaudit in benchmarks/.work/peers-modelaudit
(with its h5, joblib, onnx and safetensors extras).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
for _path in (str(BENCH.parent), str(BENCH), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common import RESULTS, WORK, machine, peers_bin  # noqa: E402

WORKER = HERE / "worker.py"
GARRISON_PY = Path(sys.executable)
GARRISON = GARRISON_PY.parent / "garrison"
LOGS = WORK / "modelscan-logs"
LARGE = WORK / "modelscan-large"
LARGE_TARGETS = {
    "checkpoint": "PyTorch checkpoint",
    "raw": "raw pickle, bytes payload",
    "dir1000": "1,000 small models",
}
"""``--only`` keys and the large targets they name."""
PYCACHE = WORK / "pycache"
"""Bytecode of every timed command (``PYTHONPYCACHEPREFIX``): an installed tool runs from compiled
bytecode, so the timed commands must too, even where the shell sets ``PYTHONDONTWRITEBYTECODE``
(Garrison's editable source would otherwise be compiled on every run, the peers' wheels never)."""
ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONWARNINGS": "ignore",
}
EXTRA_VENVS = {
    # one pip call per step; torch first so pip takes the CPU wheel (PEERS.md)
    "peers-modelscan": [["modelscan[h5py]==0.8.8", "numpy<2"]],
    "peers-modelaudit": [["torch==2.13.0"], ["modelaudit[h5,joblib,onnx,pytorch,safetensors]==0.2.54"]],
}


@dataclass(frozen=True)
class Column:
    """One row of the result tables: a tool and the verdict variant that decides "flagged"."""

    label: str
    tool: str
    variant: str
    criterion: str


COLUMNS = [
    Column("Garrison", "garrison", "", "any finding of severity high or critical (default `--fail-on high`)"),
    Column("picklescan", "picklescan", "", "at least one dangerous global (its exit code 1)"),
    Column("picklescan --strict", "picklescan", "strict", "dangerous or suspicious globals (`--strict`)"),
    Column("modelscan", "modelscan", "", "any issue, whatever its severity (its exit code 1)"),
    Column("fickling", "fickling", "", "severity above LIKELY_SAFE (its CLI and `ScanResult.is_safe`)"),
    Column("fickling (overt)", "fickling", "overt", "severity LIKELY_OVERTLY_MALICIOUS or worse"),
    Column("modelaudit", "modelaudit", "", "a warning or critical issue (its exit code 1)"),
]  # fmt: skip


# -- environments ------------------------------------------------------------------------------------
def _venv(name: str, steps: list[list[str]]) -> Path | None:
    """``WORK/name/bin``, created and filled on first use; ``None`` when it cannot be installed."""
    root = WORK / name
    stamp = root / ".installed"
    wanted = "\n".join(" ".join(step) for step in steps) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return root / "bin"
    print(f"installing {' + '.join(wanted.split())} into benchmarks/.work/{name} (once) ...", file=sys.stderr)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        for step in steps:
            subprocess.run([*pip, *step], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"{name} could not be installed ({exc}); left out", file=sys.stderr)
        return None
    stamp.write_text(wanted)
    return root / "bin"


def environments(tools: list[str]) -> dict[str, Path]:
    """The bin directory that runs each tool (Garrison's own for Garrison)."""
    out: dict[str, Path] = {"garrison": GARRISON_PY.parent}
    if {"picklescan", "fickling"} & set(tools):
        base = peers_bin()
        if base is not None:
            out["picklescan"] = out["fickling"] = base
    if "modelscan" in tools and (ms := _venv("peers-modelscan", EXTRA_VENVS["peers-modelscan"])):
        out["modelscan"] = ms
    if "modelaudit" in tools and (ma := _venv("peers-modelaudit", EXTRA_VENVS["peers-modelaudit"])):
        out["modelaudit"] = ma
    return {tool: path for tool, path in out.items() if tool in tools}


def versions(envs: dict[str, Path]) -> dict[str, str]:
    """Installed version of each tool."""
    dist = {"garrison": "garrison", "picklescan": "picklescan", "modelscan": "modelscan",
            "fickling": "fickling", "modelaudit": "modelaudit"}  # fmt: skip
    out = {}
    for tool, bindir in envs.items():
        code = f"import importlib.metadata as m; print(m.version({dist[tool]!r}))"
        done = subprocess.run(
            [str(bindir / "python"), "-c", code], check=False, capture_output=True, text=True
        )
        out[tool] = done.stdout.strip() or "?"
    return out


# -- per-file runs -------------------------------------------------------------------------------------
class Worker:
    """A ``worker.py`` process for one tool; restarted after a crash or a timeout."""

    def __init__(self, tool: str, bindir: Path, log: IO[str]) -> None:
        self.tool = tool
        self.python = bindir / "python"
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.restarts = 0

    def start(self) -> None:
        env = {**os.environ, **ENV}
        self.proc = subprocess.Popen(
            [str(self.python), str(WORKER), self.tool],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=WORK,
        )
        self.lines = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump(lines: queue.Queue[str | None]) -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.lines,), daemon=True).start()
        ready = self.lines.get(timeout=300)
        if ready is None or "ready" not in json.loads(ready):
            raise RuntimeError(f"{self.tool} worker did not start; see {self.log.name}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def scan(self, path: Path, timeout: float) -> dict[str, Any]:
        if self.proc is None:
            self.start()
        assert self.proc is not None
        assert self.proc.stdin is not None
        start = time.perf_counter()
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            self.restarts += 1
            return {"timeout": True, "seconds": time.perf_counter() - start}
        except BrokenPipeError:
            line = None
        if line is None:
            code = self.proc.wait()
            self.proc = None
            self.restarts += 1
            return {"crash": f"worker exited with {code}", "seconds": time.perf_counter() - start}
        verdict: dict[str, Any] = json.loads(line)
        return verdict


def _drive(tool: str, bindir: Path, paths: list[Path], timeout: float, log: Path) -> tuple[list[Any], int]:
    """Verdicts for ``paths`` from one worker, and how often it had to be restarted."""
    with log.open("w") as stream:
        worker = Worker(tool, bindir, stream)
        verdicts = [worker.scan(path, timeout) for path in paths]
        worker.stop()
    return verdicts, worker.restarts


def run_corpus(
    envs: dict[str, Path], corpus: Path, manifest: dict[str, dict[str, Any]], timeout: float, jobs: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{tool: {relative path: verdict}}`` for every tool and corpus file, ``jobs`` workers per tool."""
    from concurrent.futures import ThreadPoolExecutor

    LOGS.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    names = list(manifest)
    shares = [names[i::jobs] for i in range(jobs)]
    for tool, bindir in envs.items():
        started = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(_drive, tool, bindir, [corpus / "files" / rel for rel in share], timeout,
                            LOGS / f"{tool}-{i}.log")
                for i, share in enumerate(shares)
            ]  # fmt: skip
            done = [f.result() for f in futures]
        verdicts = {
            rel: v
            for share, (vs, _) in zip(shares, done, strict=True)
            for rel, v in zip(share, vs, strict=True)
        }
        results[tool] = {rel: verdicts[rel] for rel in names}
        took = time.perf_counter() - started
        restarts = sum(r for _, r in done)
        print(f"  {tool}: {len(names)} files in {took:.1f} s ({restarts} restarts)", file=sys.stderr)
    return results


def outcome(verdict: dict[str, Any], variant: str) -> str:
    """flagged, clean, error (tool reported it), skipped (not looked at), crash or timeout."""
    if verdict.get("timeout"):
        return "timeout"
    if "crash" in verdict:
        return "crash"
    if verdict["flagged"].get(variant):
        return "flagged"
    if verdict["status"] == "error":
        return "error"
    if verdict["status"] == "skipped":
        return "skipped"
    return "clean"


# -- summaries -----------------------------------------------------------------------------------------
def summarise(
    manifest: dict[str, dict[str, Any]], results: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Per-column totals, breakdowns and lists of misses and false positives."""
    malicious = [rel for rel, e in manifest.items() if e["label"] == "malicious"]
    benign = [rel for rel, e in manifest.items() if e["label"] == "benign"]
    out: dict[str, Any] = {}
    for col in COLUMNS:
        if col.tool not in results:
            continue
        res = results[col.tool]
        outcomes = {rel: outcome(res[rel], col.variant) for rel in manifest}
        count = Counter(outcomes.values())
        by_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_technique: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        fp_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for rel in malicious:
            entry = manifest[rel]
            hit = outcomes[rel] == "flagged"
            for table, key in ((by_group, entry["group"]), (by_technique, entry["technique"])):
                table[key][0] += hit
                table[key][1] += 1
        for rel in benign:
            fp_group[manifest[rel]["group"]][0] += outcomes[rel] == "flagged"
            fp_group[manifest[rel]["group"]][1] += 1
        blocked = {"flagged", "error", "crash", "timeout"}
        out[col.label] = {
            "tool": col.tool,
            "variant": col.variant,
            "criterion": col.criterion,
            "detected": sum(outcomes[r] == "flagged" for r in malicious),
            "malicious": len(malicious),
            "false_positives": sum(outcomes[r] == "flagged" for r in benign),
            "benign": len(benign),
            "crashes": count["crash"],
            "timeouts": count["timeout"],
            "errors": count["error"],
            "errors_total": sum(res[r].get("status") == "error" for r in manifest),
            "skipped": count["skipped"],
            "blocked_malicious": sum(outcomes[r] in blocked for r in malicious),
            "blocked_benign": sum(outcomes[r] in blocked for r in benign),
            "seconds": sum(float(res[r].get("seconds", 0.0)) for r in manifest),
            "by_group": dict(by_group),
            "by_technique": dict(by_technique),
            "false_positives_by_group": dict(fp_group),
            "missed": sorted(r for r in malicious if outcomes[r] != "flagged"),
            "flagged_benign": sorted(r for r in benign if outcomes[r] == "flagged"),
            "crashed": sorted(r for r in manifest if outcomes[r] in {"crash", "timeout"}),
            "outcomes": outcomes,
        }
    return out


def garrison_rule_gaps(
    manifest: dict[str, dict[str, Any]], results: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, list[str]]]:
    """Malicious files where Garrison did not raise every rule the generator expects."""
    gaps = {}
    for rel, entry in manifest.items():
        verdict = results.get("garrison", {}).get(rel, {})
        raised = set(verdict.get("rules", []))
        missing = sorted(set(entry["expected_rules"]) - raised)
        if missing and "rules" in verdict:
            gaps[rel] = {"missing": missing, "raised": sorted(raised)}
    return gaps


# -- large files ---------------------------------------------------------------------------------------
def build_large(root: Path, size: int, only: set[str] | None = None) -> dict[str, Path]:
    """The three large targets under ``root`` (replaced if present), or those ``only`` names."""
    import numpy as np
    import torch
    from tests.supplychain.formats.builders import safetensors_bytes

    from bench_pickle import build as build_pickle

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    free = shutil.disk_usage(root).free
    if free < 4 << 30 and (only is None or only - {"dir1000"}):
        raise SystemExit(f"only {free / 2**30:.1f} GiB free under {root}; the large files need about 2.2 GiB")
    targets: dict[str, Path] = {}
    if only is None or "checkpoint" in only:
        targets[LARGE_TARGETS["checkpoint"]] = _build_checkpoint(root, size, torch)
    if only is None or "raw" in only:
        raw = root / "payload-1g.pkl"
        build_pickle(raw, size)
        targets[LARGE_TARGETS["raw"]] = raw
    if only is None or "dir1000" in only:
        many = root / "models-1000"
        many.mkdir()
        _build_many(many, np, torch, safetensors_bytes)
        targets[LARGE_TARGETS["dir1000"]] = many
    return targets


def _build_checkpoint(root: Path, size: int, torch: Any) -> Path:
    checkpoint = root / "checkpoint-1g.pt"
    generator = torch.Generator().manual_seed(0)
    tensors = max(1, size // (4096 * 4096 * 4))  # 64 MiB float32 tensors
    state = {f"layers.{i}.weight": torch.randn(4096, 4096, generator=generator) for i in range(tensors)}
    torch.save(state, checkpoint)
    return checkpoint


def _build_many(folder: Path, np: Any, torch: Any, safetensors_bytes: Any) -> None:
    import warnings

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((50, 6))
    y = (x[:, 0] > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    for i in range(400):
        net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2 + i % 3))
        torch.save(net.state_dict(), folder / f"torch-{i:04d}.pt")
    for i in range(300):
        joblib.dump({"model": model, "run": i}, folder / f"sklearn-{i:04d}.joblib")
    for i in range(200):
        np.save(folder / f"array-{i:04d}.npy", rng.random((32, 32)))
    for i in range(100):
        data = rng.random((8, 8), dtype=np.float32).tobytes()
        header = {"w": {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, len(data)]}}
        (folder / f"weights-{i:04d}.safetensors").write_bytes(safetensors_bytes(header, data))


def large_commands(envs: dict[str, Path], target: Path) -> dict[str, list[str]]:
    """Each tool's own command line on ``target`` (a file or a directory)."""
    cmds: dict[str, list[str]] = {}
    if "garrison" in envs:
        cmds["Garrison"] = [
            str(GARRISON),
            "scan",
            str(target),
            "--format",
            "json",
            "--no-store",
            "--no-progress",
        ]
    if "picklescan" in envs:
        cmds["picklescan"] = [str(envs["picklescan"] / "picklescan"), "-p", str(target)]
    if "modelscan" in envs:
        cmds["modelscan"] = [str(envs["modelscan"] / "modelscan"), "-p", str(target)]
    if "fickling" in envs:
        cmds["fickling"] = [str(envs["fickling"] / "python"), str(WORKER), "--once", "fickling", str(target)]
    if "modelaudit" in envs:
        cmds["modelaudit"] = [str(envs["modelaudit"] / "modelaudit"), "scan", str(target), "--format", "json",
                              "--no-cache"]  # fmt: skip
    return cmds


def time_large(envs: dict[str, Path], targets: dict[str, Path], runs: int, timeout: float) -> dict[str, Any]:
    """Wall-clock times of every tool's command on every large target, and Garrison's API.

    Every command runs once untimed first (page cache, bytecode), then the tools take turns, one
    run each per round, so a change in the machine's load falls on all of them alike.
    """
    from garrison.core.config import Settings
    from garrison.core.severity import Severity
    from garrison.detectors import default_registry
    from garrison.engine.runner import scan_path

    registry = default_registry()
    out: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= ENV | {"PYTHONPYCACHEPREFIX": str(PYCACHE)}
    for name, target in targets.items():
        size = sum(p.stat().st_size for p in target.rglob("*")) if target.is_dir() else target.stat().st_size
        files = sum(1 for p in target.rglob("*") if p.is_file()) if target.is_dir() else 1
        row: dict[str, Any] = {
            "path": str(target),
            "bytes": size,
            "files": files,
            "timeout": timeout,
            "tools": {},
        }
        commands = large_commands(envs, target)
        times: dict[str, list[float]] = {label: [] for label in commands}
        codes: dict[str, list[int]] = {label: [] for label in commands}
        status = dict.fromkeys(commands, "ok")
        for round_ in range(runs + 1):  # round 0 is the untimed warm-up
            for label, argv in commands.items():
                if status[label] != "ok":
                    continue
                start = time.perf_counter()
                try:
                    done = subprocess.run(
                        argv,
                        check=False,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=env,
                        timeout=timeout,
                    )
                except subprocess.TimeoutExpired:
                    status[label] = "timeout"
                    continue
                if round_:
                    times[label].append(time.perf_counter() - start)
                    codes[label].append(done.returncode)
        for label in commands:
            row["tools"][label] = _timing(times[label], status[label], codes[label])
            print(f"  {name}: {label} {row['tools'][label]}", file=sys.stderr)
        api_times: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            report = scan_path(target, settings=Settings(store=False), registry=registry)
            api_times.append(time.perf_counter() - start)
        row["garrison_api"] = _timing(api_times, "ok", []) | {
            "findings": len(report.findings),
            "high": sum(f.severity >= Severity.HIGH for f in report.findings),
            "errors": len(report.errors),
            "skipped": len(report.skipped),
            "assets": len(report.assets),
        }
        out[name] = row
    return out


def _timing(times: list[float], status: str, codes: list[int]) -> dict[str, Any]:
    if not times:
        return {"status": status, "times": [], "exit_codes": codes}
    return {
        "status": status,
        "times": times,
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "exit_codes": codes,
    }


# -- report ----------------------------------------------------------------------------------------------
def _frac(hit: int, total: int) -> str:
    return f"{hit}/{total} ({100 * hit / total:.0f}%)" if total else "–"


def _short(names: list[str], limit: int) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f", … and {len(names) - limit} more" if len(names) > limit else "")


def render(data: dict[str, Any]) -> str:
    """The Markdown page: corpus tables (unless skipped), large-file timings (with ``--large``), notes."""
    lines = [
        "# Model-file scanners side by side",
        "",
        f"Measured on {data['machine']}. Versions: "
        + ", ".join(f"{tool} {ver}" for tool, ver in data["versions"].items())
        + ".",
    ]
    if "summary" in data:
        lines += _render_corpus(data)
    if data.get("large"):
        lines += _render_large(data["large"], data["runs"])
    lines += ["", "## How each tool was run and what counts as flagged", ""]
    lines += [f"- **{col.label}**: {col.criterion}." for col in COLUMNS if col.tool in data["versions"]]
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


def _render_corpus(data: dict[str, Any]) -> list[str]:
    summary: dict[str, Any] = data["summary"]
    manifest: dict[str, dict[str, Any]] = data["manifest"]
    labels = list(summary)
    counts = Counter(e["label"] for e in manifest.values())
    groups = Counter(e["group"] for e in manifest.values())
    lines = [
        "",
        f"Corpus: {len(manifest)} files, {counts['malicious']} malicious and {counts['benign']} benign, "
        "built by `benchmarks/modelscan/corpus.py` (groups: "
        + ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
        + "). Every malicious payload is harmless (it would at most touch a canary file, which was "
        "checked not to exist after the run).",
        "",
        "## Detection, false positives, crashes",
        "",
        "| tool | malicious flagged | benign flagged (false positives) | crashes / timeouts "
        "| errors reported | not scanned | corpus time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in labels:
        s = summary[label]
        lines.append(
            f"| {label} | {_frac(s['detected'], s['malicious'])} "
            f"| {_frac(s['false_positives'], s['benign'])} | {s['crashes']} / {s['timeouts']} "
            f"| {s['errors']} | {s['skipped']} | {s['seconds']:.1f} |"
        )
    lines += [
        "",
        "*errors reported*: the tool said it could not (fully) scan the file and did not flag it; "
        "*not scanned*: the tool skipped the file (extension or format it does not handle). "
        "*corpus time*: sum of the per-file API calls in a warm worker process (start-up excluded).",
        "",
        "Counting an error, a crash or a timeout as a block as well (a fail-closed CI gate):",
        "",
        "| tool | malicious blocked | benign blocked |",
        "| --- | --- | --- |",
    ]
    for label in labels:
        s = summary[label]
        lines.append(
            f"| {label} | {_frac(s['blocked_malicious'], s['malicious'])} "
            f"| {_frac(s['blocked_benign'], s['benign'])} |"
        )
    for title, key, total_label in (
        ("Malicious files flagged, by group", "by_group", "malicious"),
        ("Malicious files flagged, by technique family", "by_technique", "malicious"),
        ("False positives, by group", "false_positives_by_group", "benign"),
    ):
        keys = sorted({k for s in summary.values() for k in s[key]})
        lines += [
            "",
            f"## {title}",
            "",
            f"| {key.split('_')[-1]} | {total_label} | " + " | ".join(labels) + " |",
        ]
        lines.append("|" + " --- |" * (len(labels) + 2))
        for k in keys:
            total = next(s[key][k][1] for s in summary.values() if k in s[key])
            cells = [f"{s[key].get(k, [0, 0])[0]}" for s in summary.values()]
            lines.append(f"| {k} | {total} | " + " | ".join(cells) + " |")
    lines += ["", "## What each tool missed or wrongly flagged", ""]
    for label in labels:
        s = summary[label]
        limit = 1000 if s["tool"] == "garrison" else 12
        lines.append(
            f"- **{label}**: missed {len(s['missed'])}"
            + (f": {_short(s['missed'], limit)}" if s["missed"] else "")
        )
        if s["flagged_benign"]:
            lines.append(
                f"  false positives {len(s['flagged_benign'])}: {_short(s['flagged_benign'], limit)}"
            )
        if s["crashed"]:
            lines.append(f"  crashes/timeouts {len(s['crashed'])}: {_short(s['crashed'], limit)}")
    if data.get("garrison_rule_gaps"):
        lines += ["", "Garrison flagged these but without every rule the generator expects:", ""]
        for rel, gap in data["garrison_rule_gaps"].items():
            lines.append(
                f"- `{rel}`: missing {', '.join(gap['missing'])} (raised {', '.join(gap['raised'])})"
            )
    return lines


def _render_large(large: dict[str, Any], runs: int) -> list[str]:
    targets = list(large)
    tools = sorted({t for row in large.values() for t in row["tools"]}, key=lambda t: (t != "Garrison", t))
    sizes = []
    for name, row in large.items():
        files = f" in {row['files']:,} files" if row["files"] > 1 else ""
        amount = f"{row['bytes'] / 1e9:.2f} GB" if row["bytes"] >= 1e8 else f"{row['bytes'] / 1e6:.1f} MB"
        sizes.append(f"{name}: {amount}{files}")
    lines = [
        "",
        "## Large files",
        "",
        f"Wall-clock seconds of each tool's own command line, median of {runs} runs [min–max] after one "
        "untimed warm-up run, the tools taking turns, all from compiled bytecode, and the "
        "ratio to Garrison's command line (above 1: slower than Garrison). Files were in the page cache "
        "(written just before; caches cannot be dropped here). " + "; ".join(sizes) + ".",
        "",
        "| tool | " + " | ".join(targets) + " |",
        "|" + " --- |" * (len(targets) + 1),
    ]
    api_cells = []
    for row in large.values():
        api = row["garrison_api"]
        rate = f", {row['bytes'] / api['median'] / 1e9:.1f} GB/s" if row["files"] == 1 else ""
        api_cells.append(f"{api['median']:.3f} [{api['min']:.3f}–{api['max']:.3f}]{rate}")
    lines.append("| Garrison, in-process API (`scan_path`) | " + " | ".join(api_cells) + " |")
    for tool in tools:
        cells = []
        for row in large.values():
            t = row["tools"].get(tool, {})
            base = row["tools"].get("Garrison", {}).get("median")
            if "median" not in t:
                cells.append(f"> {row['timeout']:.0f} (timeout)" if t.get("status") == "timeout" else "–")
                if t.get("status") == "timeout" and base:
                    cells[-1] += f", > {row['timeout'] / base:.0f}×"
                continue
            ratio = f", {t['median'] / base:.1f}×" if base and tool != "Garrison" else ""
            rate = f", {row['bytes'] / t['median'] / 1e9:.2f} GB/s" if row["files"] == 1 else ""
            codes = ",".join(map(str, sorted(set(t["exit_codes"]))))
            cells.append(f"{t['median']:.2f} [{t['min']:.2f}–{t['max']:.2f}]{rate}{ratio}, exit {codes}")
        lines.append(f"| {tool} (CLI) | " + " | ".join(cells) + " |")
    lines += _acceptance(large)
    lines += [
        "",
        "Commands: `garrison scan PATH --format json --no-store --no-progress`, `picklescan -p PATH`, "
        "`modelscan -p PATH`, `modelaudit scan PATH --format json --no-cache`. fickling has no directory "
        "mode (and its CLI rejects PyTorch zips): its command is one Python process that scans the file, "
        "or walks the directory and scans every file, with fickling's API (`worker.py --once fickling "
        "PATH`). Exit codes are each tool's own: 0 clean, 1 flagged, 2 (or 3, 4) errors or incomplete.",
    ]
    return lines


def _acceptance(large: dict[str, Any]) -> list[str]:
    """The issue's targets, checked against this run."""
    lines = ["", "Targets (issue 3):", ""]
    rows = list(large.values())
    if len(rows) < 3:
        return []
    checkpoint, raw, many = rows[0], rows[1], rows[2]
    api = checkpoint["garrison_api"]
    cli = checkpoint["tools"].get("Garrison", {})
    lines.append(
        f"- checkpoint in under 0.2 s: API {api['median']:.3f} s, "
        f"CLI {cli.get('median', float('nan')):.2f} s (the CLI figure includes start-up)."
    )
    api = raw["garrison_api"]
    cli = raw["tools"].get("Garrison", {})
    lines.append(
        f"- raw pickle at 1 GB/s or more: API {raw['bytes'] / api['median'] / 1e9:.1f} GB/s, "
        f"CLI {raw['bytes'] / cli.get('median', float('inf')) / 1e9:.2f} GB/s (file size over time)."
    )
    peers = {t: v["median"] for t, v in many["tools"].items() if t != "Garrison" and "median" in v}
    if peers and "median" in many["tools"].get("Garrison", {}):
        fastest = min(peers, key=peers.__getitem__)
        codes = ",".join(map(str, sorted(set(many["tools"][fastest]["exit_codes"]))))
        ratio = peers[fastest] / many["tools"]["Garrison"]["median"]
        clean = {t: m for t, m in peers.items() if set(many["tools"][t]["exit_codes"]) <= {0, 1}}
        note = ""
        if clean and min(clean, key=clean.__getitem__) != fastest:
            alt = min(clean, key=clean.__getitem__)
            note = (
                f"; the fastest peer that finished without errors is {alt}, "
                f"{clean[alt] / many['tools']['Garrison']['median']:.1f}"
            )
        lines.append(
            f"- 1,000 models at least 5× faster than the fastest peer: the fastest peer is {fastest} "
            f"({peers[fastest]:.2f} s, exit {codes}); its time over Garrison's CLI time is {ratio:.1f}{note}."
        )
    for name, row in large.items():
        g = row["garrison_api"]
        if g.get("errors") or g.get("skipped") or g.get("high"):
            lines.append(
                f"- Garrison on {name}: {g.get('high', 0)} high findings, {g.get('errors', 0)} errors, "
                f"{g.get('skipped', 0)} skipped (all should be 0)."
            )
    return lines


NOTES = [
    "Notes:",
    "",
    "- Files keep the extension their format implies (`.pkl`, `.pt`, `.joblib`, `.npy`, `.keras`, ...) "
    "because modelscan, picklescan and fickling choose a scanner by extension; group `nonstandard-ext` "
    "repeats every raw pickle under no extension or `.model`, `.sav`, `.p`, `.weights`.",
    "- Every tool is driven through its Python API in worker processes in its own virtual environment "
    "(two per tool, one file per call, per-file timeout of `--timeout` seconds; a worker is restarted "
    "after a crash or a timeout). modelaudit's worker calls `scan_model_directory_or_file` with the "
    "arguments `modelaudit scan FILE --no-cache` passes and maps the result with modelaudit's own "
    "`determine_exit_code`; `--modelaudit-cli` runs the command per file instead.",
    "- fickling is routed the way its own Hugging Face scanner routes files: zips to `scan_zip_archive`, "
    "pickles (or `.bin`/`.pkl`/`.pickle`) to `scan_file`, both with `graceful=True`; tar, NumPy and other"
    " files are not scanned.",
    "- modelscan runs with `numpy<2` (its NumPy scanner fails on NumPy 2) and its h5py extra; its "
    "`.keras` scanner needs TensorFlow, which is not installed, so it reports an error on `.keras` files."
    " modelaudit runs with torch 2.13 and its h5, joblib, onnx, pytorch and safetensors extras: without "
    "torch beside it, it also flags ordinary `torch.save` checkpoints. The `.h5` files are hand-made byte"
    " layouts with a Keras config, not files h5py can open.",
    "- Most of the corpus comes from the generators of Garrison's own test suite; group `independent` "
    "(`benchmarks/modelscan/extras.py`) was written for this benchmark and is not used by Garrison's "
    "tests.",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=WORK / "modelscan-corpus")
    parser.add_argument("--no-build", action="store_true", help="reuse the corpus already in --corpus")
    parser.add_argument("--tools", default="garrison,picklescan,modelscan,fickling,modelaudit")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-file timeout, seconds")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes per tool")
    parser.add_argument("--large-size", type=int, default=1 << 30, help="bytes of each large file")
    parser.add_argument("--large", action="store_true", help="also time the large-file targets")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per large-file command")
    parser.add_argument("--large-timeout", type=float, default=300.0, help="per-command timeout, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the large files afterwards")
    parser.add_argument("--skip-corpus", action="store_true", help="only the large-file timings")
    parser.add_argument(
        "--only",
        help="with --large: only these large targets, comma-separated (checkpoint, raw, dir1000); "
        "results go to benchmarks/.work/NAME-only.md and .json, never over the published tables",
    )
    parser.add_argument("--name", default="modelscan", help="results/NAME.md and results/NAME.json")
    parser.add_argument("--modelaudit-cli", action="store_true", help="run modelaudit's CLI per file (slow)")
    parser.add_argument("--render-only", action="store_true", help="rewrite NAME.md from NAME.json")
    args = parser.parse_args()
    if args.render_only:
        text = render(json.loads((RESULTS / f"{args.name}.json").read_text()))
        (RESULTS / f"{args.name}.md").write_text(text)
        print(text)
        return

    import corpus as corpus_mod

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    only = {t.strip() for t in args.only.split(",") if t.strip()} if args.only else None
    if only is not None and (only - set(LARGE_TARGETS) or not args.large):
        parser.error(f"--only takes {', '.join(LARGE_TARGETS)} and needs --large")
    envs = environments(tools)
    print(f"tools: {', '.join(envs)}", file=sys.stderr)
    data: dict[str, Any] = {"machine": machine(), "versions": versions(envs), "runs": args.runs}
    if not args.skip_corpus:
        if args.no_build:
            manifest = json.loads((args.corpus / "manifest.json").read_text())
        else:
            manifest = corpus_mod.write_corpus(args.corpus)
        print(f"corpus: {len(manifest)} files in {args.corpus}", file=sys.stderr)
        results = run_corpus(
            {t: p for t, p in envs.items() if not (t == "modelaudit" and args.modelaudit_cli)},
            args.corpus,
            manifest,
            args.timeout,
            args.jobs,
        )
        if args.modelaudit_cli and "modelaudit" in envs:
            results["modelaudit"] = modelaudit_cli(envs["modelaudit"], args.corpus, manifest, args.timeout)
        if corpus_mod.CANARY.exists():
            raise SystemExit(f"{corpus_mod.CANARY} exists: a payload ran")
        data["manifest"] = manifest
        data["summary"] = summarise(manifest, results)
        data["garrison_rule_gaps"] = garrison_rule_gaps(manifest, results)
        data["results"] = results
    if args.large:
        targets = build_large(LARGE, args.large_size, only)
        try:
            data["large"] = time_large(envs, targets, args.runs, args.large_timeout)
        finally:
            if not args.keep:
                shutil.rmtree(LARGE, ignore_errors=True)
    out_dir, name = (RESULTS, args.name) if only is None else (WORK, f"{args.name}-only")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(_for_json(data), indent=1, sort_keys=False) + "\n")
    text = render(data)
    (out_dir / f"{name}.md").write_text(text)
    print(text)


def _for_json(data: dict[str, Any]) -> dict[str, Any]:
    """The saved JSON: per-file verdicts trimmed (short details, rounded times), no outcome maps."""
    slim = dict(data)
    if "summary" in data:
        slim["summary"] = {
            k: {kk: vv for kk, vv in v.items() if kk != "outcomes"} for k, v in data["summary"].items()
        }
        slim["results"] = {
            tool: {rel: _trim(verdict) for rel, verdict in per_file.items()}
            for tool, per_file in data["results"].items()
        }
    return slim


def _trim(verdict: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in verdict.items() if k not in {"detail", "seconds", "crash"}}
    if verdict.get("detail"):
        out["detail"] = str(verdict["detail"])[:100]
    if "crash" in verdict:
        out["crash"] = str(verdict["crash"])[:200]
    out["seconds"] = round(float(verdict.get("seconds", 0.0)), 4)
    return out


def modelaudit_cli(
    bindir: Path, corpus: Path, manifest: dict[str, dict[str, Any]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Verdicts from ``modelaudit scan FILE --format json --no-cache``, one process per file."""
    env = {**os.environ, **ENV}
    out: dict[str, dict[str, Any]] = {}
    for rel in manifest:
        argv = [
            str(bindir / "modelaudit"),
            "scan",
            str(corpus / "files" / rel),
            "--format",
            "json",
            "--no-cache",
        ]
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            out[rel] = {"timeout": True, "seconds": time.perf_counter() - start}
            continue
        seconds = time.perf_counter() - start
        if done.returncode not in (0, 1, 2):
            out[rel] = {"crash": f"exit {done.returncode}: {done.stderr[-200:]}", "seconds": seconds}
            continue
        status = "error" if done.returncode == 2 else "ok"
        out[rel] = {"flagged": {"": done.returncode == 1}, "status": status, "exit": done.returncode,
                    "detail": "", "seconds": seconds}  # fmt: skip
    return out


if __name__ == "__main__":
    main()
