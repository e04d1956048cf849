"""Gateway performance: Garrison beside the bare upstream, a bare ASGI forwarder and LiteLLM proxy.

One run starts one local upstream stub (upstream.py) and then, for each repeat and each target in
turn, starts the target, waits until it answers a real chat request, and measures:

1. latency with one client (closed loop, loadgen.py --clients 1): p50/p99, overhead vs direct;
2. latency at a fixed open-loop rate (default 500 requests/s, loadgen.py --rate, latency from each
   request's due time, so coordinated omission is counted): p50/p90/p99, overhead vs direct;
3. maximum throughput with wrk (-t2 -c64, a Lua script that POSTs the chat body with the
   Authorization header);
4. CPU seconds per request of the target (its process and all its descendants, /proc/<pid>/stat
   utime+stime, before and after each phase);
5. CPU used meanwhile by everything else on the machine (/proc/stat busy time minus the target, the
   upstream, the load generator and this script).

Targets: ``direct`` (the upstream itself), ``bare`` (bare_forwarder.py on uvicorn, raw asyncio client),
``bare-httpx`` (the same with httpx), ``garrison`` (the gateway with auth, RBAC, limits, audit and a regex
input filter, garrison.yaml), ``litellm`` (LiteLLM proxy 1.108.7 with its master key and a model-level
rpm; installed on first use into benchmarks/.work/litellm).

    python benchmarks/gateway/run.py --targets direct,bare,garrison,litellm --workers 1 --repeat 3

Writes --json (default benchmarks/results/gateway.json) and a markdown table beside it (.md).
Only the standard library here; the upstream, the bare forwarder and the load generator run on the
repository's .venv (uvicorn, uvloop, httptools).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = REPO / "benchmarks" / ".work" / "gateway"
LITELLM_VENV = REPO / "benchmarks" / ".work" / "litellm"
LITELLM_PIN = "litellm[proxy]==1.108.7"
HTTPX_VENV = REPO / "benchmarks" / ".work" / "bare-httpx"
# sniffio: without it httpcore 1.0.9 retries a failing `import sniffio` on every lock it makes (newer
# anyio no longer pulls sniffio in): 2.0 instead of 1.4 ms of CPU per request in a sequential test here.
HTTPX_PINS = ["httpx==0.28.1", "sniffio", "uvicorn==0.54.0", "uvloop", "httptools"]
MAIN_PY = REPO / ".venv" / "bin" / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")

MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
CHAT_BODY = json.dumps(
    {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello to the benchmark in one short sentence."}],
        "max_tokens": 16,
    },
    separators=(",", ":"),
)

# --- Target (b): Garrison. Change these lines (or pass --garrison-cmd / --garrison-setup / --garrison-config)
# when the gateway's CLI or config changes. Placeholders: {garrison} {config} {db} {port} {workers}.
GARRISON_CMD = (
    "{garrison} gateway serve --config {config} --host 127.0.0.1 --port {port} --workers {workers} "
    "--log-level warning"
)
# Run once per start, on a fresh key store; prints the API key the benchmark sends (JSON with "key", or
# the key alone on the last line of stdout). Empty: no setup, send --garrison-key.
GARRISON_SETUP = "{garrison} keys create --name bench --role app --db {db} --format json"
GARRISON_CONFIG = HERE / "garrison.yaml"
LITELLM_MASTER_KEY = "sk-bench-master-key"


@dataclass(kw_only=True)
class Target:
    """How to start one target and how to call it."""

    name: str
    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int
    api_key: str
    start_timeout: float = 90.0
    cwd: Path = HERE


# --------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = HERE, log: Path
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process (LiteLLM and uvicorn stop their workers themselves), then its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the session we started: stragglers only
    proc.wait()


def chat_once(port: int, api_key: str, timeout: float = 5.0) -> tuple[int, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{CHAT_PATH}",
        data=CHAT_BODY.encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(300).decode("utf-8", "replace")


def wait_ready(target: Target, proc: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until the target answers a real chat request with 200; raises if it never does."""
    began = time.monotonic()
    last = "no answer"
    while time.monotonic() - began < target.start_timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {proc.returncode}; log: {log}\n{tail(log)}")
        try:
            status, text = chat_once(target.port, target.api_key, timeout=2.0)
            if status == 200 and '"choices"' in text:
                return time.monotonic() - began
            last = f"HTTP {status}: {text[:200]}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(
        f"{target.name} not ready after {target.start_timeout:.0f} s ({last}); log: {log}\n{tail(log)}"
    )


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------- CPU accounting


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime in clock ticks) for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def tree_ticks(roots: list[int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """CPU ticks of each process in the trees rooted at ``roots``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        out[pid] = table[pid][1]
        stack.extend(children.get(pid, []))
    return out


def machine_busy_ticks() -> int:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal


class CpuMeter:
    """CPU seconds of the target tree, the upstream tree, the load generator and everything else."""

    def __init__(self, target_pid: int, upstream_pid: int | None) -> None:
        self.target_pid = target_pid
        self.upstream_pid = upstream_pid

    def sample(self) -> dict[str, Any]:
        table = _proc_table()
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # exited children: the load generators
        return {
            "wall": time.monotonic(),
            "busy": machine_busy_ticks(),
            "all": {pid: ticks for pid, (_, ticks) in table.items()},
            "target": tree_ticks([self.target_pid], table),
            "upstream": tree_ticks([self.upstream_pid], table) if self.upstream_pid else {},
            "self_s": own.ru_utime + own.ru_stime,
            "children_s": kids.ru_utime + kids.ru_stime,
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], *, same_tree: bool) -> dict[str, float]:
        def tree_delta(key: str) -> float:
            b: dict[int, int] = before[key]
            a: dict[int, int] = after[key]
            return sum(t - b.get(pid, 0) for pid, t in a.items()) / CLK_TCK

        wall = after["wall"] - before["wall"]
        target = tree_delta("target")
        upstream = 0.0 if same_tree else tree_delta("upstream")
        loadgen = after["children_s"] - before["children_s"]
        harness = after["self_s"] - before["self_s"]
        busy = (after["busy"] - before["busy"]) / CLK_TCK
        other = max(0.0, busy - target - upstream - loadgen - harness)
        # a second estimate: processes alive at the end, outside our trees (misses short-lived ones)
        ours = set(after["target"]) | set(after["upstream"]) | {os.getpid()}
        seen = (
            sum(t - before["all"].get(pid, 0) for pid, t in after["all"].items() if pid not in ours) / CLK_TCK
        )
        return {
            "wall_s": wall,
            "target_cpu_s": target,
            "upstream_cpu_s": upstream,
            "loadgen_cpu_s": loadgen,
            "machine_busy_s": busy,
            "other_cpu_s": other,
            "other_cores": other / wall if wall > 0 else 0.0,
            "other_procs_seen_cores": seen / wall if wall > 0 else 0.0,
        }


def settle(meter: CpuMeter, *, idle_share: float = 0.1, window: float = 0.3, limit: float = 15.0) -> None:
    """Wait (at most ``limit`` s) until the target uses under ``idle_share`` of a core: no backlog left."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        before = meter.sample()
        time.sleep(window)
        after = meter.sample()
        if CpuMeter.delta(before, after, same_tree=True)["target_cpu_s"] < idle_share * window:
            return


# --------------------------------------------------------------------------------------------- load


def run_loadgen(target: Target, extra: list[str]) -> dict[str, Any]:
    argv = [
        str(MAIN_PY),
        str(HERE / "loadgen.py"),
        f"http://127.0.0.1:{target.port}{CHAT_PATH}",
        "--body",
        CHAT_BODY,
        "--header",
        f"Authorization: Bearer {target.api_key}",
        *extra,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def write_lua(target: Target) -> Path:
    path = WORK / f"wrk-{target.name}.lua"
    body = CHAT_BODY.replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {target.api_key}"\n'
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else math.nan


def run_wrk(target: Target, *, threads: int, conns: int, duration: float) -> dict[str, Any]:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(write_lua(target)),
        f"http://127.0.0.1:{target.port}{CHAT_PATH}",
    ]
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    out: dict[str, Any] = {"threads": threads, "connections": conns, "duration_s": max(1, round(duration))}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", text):
        out["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    for q in ("50", "90", "99"):
        if m := re.search(rf"^\s+{q}(?:\.000)?%\s+(\S+)", text, re.M):
            out[f"p{q}_ms"] = _ms(m.group(1))
    if "rps" not in out:
        raise RuntimeError(f"could not read wrk's output:\n{text}")
    return out


# --------------------------------------------------------------------------------------------- setup


def ensure_venv(venv: Path, requirements: list[str], what: str) -> Path:
    """A venv with ``requirements`` (installed once; a stamp file records what was installed)."""
    stamp = venv / ".installed"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin"
    print(f"installing {what} into {venv.relative_to(REPO)} (once) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(wanted)
    return venv / "bin"


def litellm_config(upstream_port: int) -> Path:
    """LiteLLM's config: the upstream as an OpenAI-compatible model, a model-level rpm, the master key."""
    path = WORK / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-upstream-not-checked\n"
        "      rpm: 10000000  # enforced by LiteLLM's router; far above what any phase sends\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    return path


def garrison_config(source: Path, upstream_port: int, workers: int) -> Path:
    """garrison.yaml with its placeholders filled: {{upstream}}, {{work}}, {{limits_backend}}."""
    backend = "{type: memory}" if workers == 1 else f"{{type: sqlite, path: {WORK / 'garrison-limits.db'}}}"
    text = source.read_text()
    text = text.replace("{{upstream}}", f"http://127.0.0.1:{upstream_port}")
    text = text.replace("{{work}}", str(WORK))
    text = text.replace("{{limits_backend}}", backend)
    path = WORK / "garrison.yaml"
    path.write_text(text)
    return path


def garrison_setup(template: str, fallback_key: str) -> str:
    """A fresh key store and the API key to send: runs ``template`` and reads the key it prints."""
    for stale in WORK.glob("garrison-bench.db*"):
        stale.unlink()
    for stale in WORK.glob("garrison-limits.db*"):
        stale.unlink()
    shutil.rmtree(WORK / "garrison-audit", ignore_errors=True)
    if not template:
        return fallback_key
    command = template.format(garrison=REPO / ".venv" / "bin" / "garrison", db=WORK / "garrison-bench.db")
    done = subprocess.run(shlex.split(command), check=False, capture_output=True, text=True, cwd=WORK)
    if done.returncode != 0:
        raise RuntimeError(f"garrison setup failed ({command}):\n{done.stderr[-1500:]}")
    out = done.stdout.strip()
    try:
        return str(json.loads(out)["key"])
    except (ValueError, KeyError, TypeError):
        return out.splitlines()[-1].strip()


def make_target(name: str, args: argparse.Namespace, upstream_port: int) -> Target:
    port = free_port()
    workers = str(args.workers)
    if name == "direct":
        return Target(name=name, label="upstream directly", argv=[], port=upstream_port, api_key="sk-direct")
    if name in ("bare", "bare-httpx"):
        python = MAIN_PY
        client = "raw"
        if name == "bare-httpx":
            python = ensure_venv(HTTPX_VENV, HTTPX_PINS, "httpx for the bare forwarder") / "python"
            client = "httpx"
        argv = [
            str(python), "-m", "uvicorn", "bare_forwarder:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", workers, "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        env = {"BARE_UPSTREAM": f"http://127.0.0.1:{upstream_port}", "BARE_CLIENT": client}
        label = f"bare ASGI forwarder ({client} client)"
        return Target(name=name, label=label, argv=argv, env=env, port=port, api_key="sk-bare")
    if name == "garrison":
        config = garrison_config(Path(args.garrison_config), upstream_port, args.workers)
        command = args.garrison_cmd.format(
            garrison=REPO / ".venv" / "bin" / "garrison",
            config=config,
            db=WORK / "garrison-bench.db",
            port=port,
            workers=workers,
        )
        return Target(
            name=name, label="Garrison (auth, RBAC, limits, audit, regex filter)", argv=shlex.split(command),
            port=port, api_key=args.garrison_key, cwd=WORK, start_timeout=60.0,
        )  # fmt: skip
    if name == "litellm":
        bin_dir = ensure_venv(LITELLM_VENV, [LITELLM_PIN], "LiteLLM proxy")
        argv = [
            str(bin_dir / "litellm"), "--config", str(litellm_config(upstream_port)), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", workers,
        ]  # fmt: skip
        if args.workers > 1:
            # uvicorn kills a worker that does not answer its health check within 5 s; LiteLLM's workers
            # take longer than that to import on a busy machine and are then restarted forever
            argv += ["--timeout_worker_healthcheck", "120"]
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        return Target(
            name=name, label="LiteLLM proxy 1.108.7 (master key, model rpm)", argv=argv, env=env, port=port,
            api_key=LITELLM_MASTER_KEY, start_timeout=180.0, cwd=WORK,
        )  # fmt: skip
    raise SystemExit(f"unknown target {name!r}")


# ------------------------------------------------------------------------------------------- one measurement


def measure(
    target: Target, args: argparse.Namespace, upstream: subprocess.Popen[bytes], run_no: int
) -> dict[str, Any]:
    proc = None
    log = WORK / "logs" / f"{target.name}-{run_no}.log"
    result: dict[str, Any] = {"target": target.name, "repeat": run_no}
    try:
        if target.name == "garrison":
            target.api_key = garrison_setup(args.garrison_setup, args.garrison_key)
        if target.argv:
            proc = start(target.argv, env=target.env, cwd=target.cwd, log=log)
            result["ready_s"] = wait_ready(target, proc, log)
        else:
            wait_ready(target, upstream, WORK / "logs" / "upstream.log")
        pid = proc.pid if proc else upstream.pid
        meter = CpuMeter(pid, upstream.pid)
        same = proc is None
        # warm-up: a second of closed-loop load, not recorded
        run_wrk(target, threads=1, conns=4, duration=1)

        def phase(run: Any) -> tuple[dict[str, Any], dict[str, float]]:
            before = meter.sample()
            out = run()
            cpu = CpuMeter.delta(before, meter.sample(), same_tree=same)
            done = out.get("requests") or out.get("completed") or 0
            cpu["target_cpu_ms_per_req"] = cpu["target_cpu_s"] / done * 1000 if done else math.nan
            return out, cpu

        d = args.duration
        settle(meter)
        one, one_cpu = phase(lambda: run_loadgen(target, ["--clients", "1", "--duration", str(d)]))
        result["one_client"] = {**one, "cpu": one_cpu}
        settle(meter)
        tput, tput_cpu = phase(
            lambda: run_wrk(target, threads=args.wrk_threads, conns=args.wrk_conns, duration=d)
        )
        result["throughput"] = {**tput, "cpu": tput_cpu}
        # last: a target that cannot keep up with the rate is left with a backlog, which would spoil
        # any phase after it. The generator opens at most as many connections as wrk does.
        settle(meter)
        rate_args = ["--rate", str(args.rate), "--duration", str(d), "--drain", str(args.drain)]
        rate, rate_cpu = phase(lambda: run_loadgen(target, [*rate_args, "--max-conns", str(args.wrk_conns)]))
        result["fixed_rate"] = {**rate, "cpu": rate_cpu}
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        result["error"] = str(exc)[-2000:]
        print(f"  {target.name}: FAILED: {str(exc)[:500]}", file=sys.stderr, flush=True)
    finally:
        if proc is not None:
            stop(proc)
    return result


# --------------------------------------------------------------------------------------------- report


def fmt_range(values: list[float], digits: int = 2) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "—"
    if any(math.isinf(v) for v in vals):
        return "∞ (overloaded)" if all(math.isinf(v) for v in vals) else f"{min(vals):.{digits}f}–∞"
    lo, hi = min(vals), max(vals)
    if f"{lo:.{digits}f}" == f"{hi:.{digits}f}":
        return f"{lo:.{digits}f}"
    return f"{lo:.{digits}f}–{hi:.{digits}f}"


def get(run: dict[str, Any], *keys: str) -> float | None:
    value: Any = run
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


def summarize(
    runs: list[dict[str, Any]], targets: list[str], rate: float
) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        if "error" not in run:
            by.setdefault(run["target"], {})[run["repeat"]] = run

    def overhead(name: str, *keys: str) -> list[float]:
        out = []
        for rep, run in by.get(name, {}).items():
            base = by.get("direct", {}).get(rep)
            v, b = get(run, *keys), get(base, *keys) if base else None
            if v is not None and b is not None:
                out.append(v - b)
        return out

    def values(name: str, *keys: str) -> list[float]:
        return [v for run in by.get(name, {}).values() if (v := get(run, *keys)) is not None]

    header = [
        "target", "1 client p50 ms", "+ vs direct", f"@{rate:g}/s p50 ms", "p90 ms", "p99 ms",
        "+p50 / +p99 vs direct", "max req/s (wrk)", "CPU ms/req", "other procs' CPU (cores)",
    ]  # fmt: skip
    rows = []
    summary: dict[str, Any] = {}
    for name in targets:
        if name not in by:
            rows.append([name, "failed"] + [""] * (len(header) - 2))
            continue
        achieved = values(name, "fixed_rate", "achieved_rps")
        overloaded = any(a < 0.95 * rate for a in achieved) or any(
            v > 0 for v in values(name, "fixed_rate", "incomplete")
        )
        p50 = fmt_range(values(name, "fixed_rate", "p50_ms"))
        p90 = fmt_range(values(name, "fixed_rate", "p90_ms"))
        p99 = fmt_range(values(name, "fixed_rate", "p99_ms"))
        added_p50 = fmt_range(overhead(name, "fixed_rate", "p50_ms"))
        added = f"{added_p50} / {fmt_range(overhead(name, 'fixed_rate', 'p99_ms'))}"
        if overloaded:
            p50 = f"overloaded: answered {fmt_range(achieved, 0)} req/s"
            p90 = p99 = added = "—"
        other = values(name, "throughput", "cpu", "other_cores") + values(
            name, "fixed_rate", "cpu", "other_cores"
        )
        rows.append([
            name,
            fmt_range(values(name, "one_client", "p50_ms")),
            "—" if name == "direct" else fmt_range(overhead(name, "one_client", "p50_ms")),
            p50,
            p90,
            p99,
            "—" if name == "direct" else added,
            fmt_range(values(name, "throughput", "rps"), 0),
            fmt_range(values(name, "throughput", "cpu", "target_cpu_ms_per_req"), 3),
            fmt_range(other, 2),
        ])  # fmt: skip
        summary[name] = {
            "one_client_p50_ms": values(name, "one_client", "p50_ms"),
            "one_client_overhead_p50_ms": overhead(name, "one_client", "p50_ms"),
            "rate_p50_ms": values(name, "fixed_rate", "p50_ms"),
            "rate_p99_ms": values(name, "fixed_rate", "p99_ms"),
            "rate_overhead_p50_ms": overhead(name, "fixed_rate", "p50_ms"),
            "rate_overhead_p99_ms": overhead(name, "fixed_rate", "p99_ms"),
            "rate_overloaded": overloaded,
            "max_rps": values(name, "throughput", "rps"),
            "cpu_ms_per_req_saturated": values(name, "throughput", "cpu", "target_cpu_ms_per_req"),
            "cpu_ms_per_req_at_rate": values(name, "fixed_rate", "cpu", "target_cpu_ms_per_req"),
            "other_cores": other,
        }
    return header, rows, summary


def ratios(by: dict[str, Any]) -> list[str]:
    lines = []
    lite = by.get("litellm", {}).get("max_rps") or []
    for name in ("garrison", "bare", "bare-httpx"):
        mine = by.get(name, {}).get("max_rps") or []
        if mine and lite:
            pairs = [m / x for m, x in zip(mine, lite, strict=False) if x]
            if pairs:
                lines.append(f"- {name} / litellm throughput: {fmt_range(pairs, 1)}× (per repeat)")
    g = by.get("garrison")
    if g:
        lines.append(
            "- Garrison goals (≤ 1 ms added at p50, ≤ 5 ms at p99 at the fixed rate; ≥ 5,000 req/s; "
            f"≥ 20× LiteLLM): +p50 {fmt_range(g['rate_overhead_p50_ms'])} ms, "
            f"+p99 {fmt_range(g['rate_overhead_p99_ms'])} ms, "
            f"{fmt_range(g['max_rps'], 0)} req/s"
        )
    return lines


def _finite(value: Any) -> Any:
    """``value`` with infinities and NaNs as strings, so the JSON file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="direct,bare,garrison,litellm")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="workers of every target")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s of the latency phase")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for late replies")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-conns", type=int, default=64)
    parser.add_argument("--upstream-workers", type=int, default=1)
    parser.add_argument(
        "--upstream-cpu", default="", help="taskset CPU list for the upstream, e.g. 1 (default: not pinned)"
    )
    parser.add_argument("--garrison-cmd", default=os.environ.get("GARRISON_CMD", GARRISON_CMD))
    parser.add_argument("--garrison-config", default=os.environ.get("GARRISON_CONFIG", str(GARRISON_CONFIG)))
    parser.add_argument("--garrison-setup", default=os.environ.get("GARRISON_SETUP", GARRISON_SETUP))
    parser.add_argument("--garrison-key", default=os.environ.get("GARRISON_KEY", ""))
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "gateway.json"))
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "direct" not in targets:
        targets.insert(0, "direct")  # every overhead is measured against it
    if not MAIN_PY.exists():
        raise SystemExit(f"{MAIN_PY} is missing: run `make test` (or create the .venv) first")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    WORK.mkdir(parents=True, exist_ok=True)

    upstream_port = free_port()
    up_argv = [
        str(MAIN_PY),
        str(HERE / "upstream.py"),
        "--port",
        str(upstream_port),
        "--workers",
        str(args.upstream_workers),
    ]
    if args.upstream_cpu:
        up_argv = ["taskset", "--cpu-list", args.upstream_cpu, *up_argv]
    upstream = start(up_argv, log=WORK / "logs" / "upstream.log")
    specs = {name: make_target(name, args, upstream_port) for name in targets}  # installs on first use
    runs: list[dict[str, Any]] = []
    started = time.time()
    load_before = os.getloadavg()
    try:
        wait_ready(specs["direct"], upstream, WORK / "logs" / "upstream.log")
        for rep in range(1, args.repeat + 1):
            for name in targets:
                target = specs[name]
                print(f"[{rep}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
                run = measure(target, args, upstream, rep)
                runs.append(run)
                if "error" not in run:
                    print(
                        f"  1-client p50 {run['one_client']['p50_ms']:.2f} ms; @{args.rate:g}/s p50 "
                        f"{run['fixed_rate']['p50_ms']:.2f} p99 {run['fixed_rate']['p99_ms']:.2f} ms; "
                        f"{run['throughput']['rps']:.0f} req/s; "
                        f"{run['throughput']['cpu']['target_cpu_ms_per_req']:.3f} CPU ms/req; "
                        f"others {run['throughput']['cpu']['other_cores']:.2f} cores",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        stop(upstream)

    header, rows, summary = summarize(runs, targets, args.rate)
    notes = [
        "",
        f"Workers per target: {args.workers}. Phases of {args.duration:g} s, {args.repeat} repeat(s); "
        "cells are min–max over repeats.",
        f"Latency at a fixed rate: open-loop, {args.rate:g} req/s, measured from each request's due time "
        "(coordinated omission counted), loadgen.py. One client: closed loop, one connection. "
        f"Throughput: wrk -t{args.wrk_threads} -c{args.wrk_conns}. "
        "CPU ms/req: the target's processes during the wrk phase. "
        "Other procs' CPU: cores busy (/proc/stat) with anything but the target, upstream, load generator "
        "and harness during the wrk and fixed-rate phases.",
        f"Upstream: upstream.py (raw asyncio + httptools, {args.upstream_workers} process(es)"
        + (f", pinned to CPU {args.upstream_cpu}" if args.upstream_cpu else ", not pinned")
        + ")",
        *ratios(summary),
    ]
    table = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    md = [
        f"# Gateway performance ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))})",
        "",
        f"Measured on {machine}.",
        "",
        *table,
        *notes,
    ]
    text = "\n".join(md) + "\n"
    print(text)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": machine,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k != "garrison_key"},
        "targets": {name: {"label": specs[name].label, "argv": specs[name].argv} for name in targets},
        "summary": summary,
        "runs": runs,
    }
    out.write_text(json.dumps(_finite(data), indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(text)
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
