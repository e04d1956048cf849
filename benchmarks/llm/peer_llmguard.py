"""Run LLM Guard's offline scanners on the texts of a job file; run inside LLM Guard's own venv.

    benchmarks/.work/llmguard/bin/python benchmarks/llm/peer_llmguard.py JOB.json RESULT.json

Called by ``bench_scanners.py``, which writes the job and reads the result. A job is
``{"tasks": [{"name", "side": "input" | "output", "texts": [...], "prompts": [...]?, "warmup": n}],
"config": {"regex": [...], "substrings": [...]}}``. For every text the result has, per scanner, the
milliseconds its ``scan`` took, whether it passed (``valid``) and its risk score (a scanner that raises: its
``error``, counted as passed), plus ``total_ms``
for all the scanners of that side in sequence, each on the original text.

Needs ``HF_HUB_OFFLINE=1`` and ``TIKTOKEN_CACHE_DIR`` (set by the caller; see ../shared/design/PEERS.md).
Only the scanners that run without downloading a model are built.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def build(config: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    from llm_guard.input_scanners import BanSubstrings, InvisibleText, Regex, Secrets, TokenLimit
    from llm_guard.output_scanners import JSON, NoRefusalLight
    from llm_guard.output_scanners import BanSubstrings as OutBanSubstrings
    from llm_guard.output_scanners import Regex as OutRegex

    inputs = [
        ("InvisibleText", InvisibleText()),
        ("Secrets", Secrets()),
        ("Regex", Regex(patterns=config["regex"])),
        ("BanSubstrings", BanSubstrings(substrings=config["substrings"], match_type="str")),
        ("TokenLimit", TokenLimit()),
    ]
    outputs = [
        ("Regex", OutRegex(patterns=config["regex"])),
        ("JSON", JSON()),
        ("BanSubstrings", OutBanSubstrings(substrings=config["substrings"], match_type="str")),
        ("NoRefusalLight", NoRefusalLight()),
    ]
    return inputs, outputs


def run_task(task: dict[str, Any], scanners: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    side = task["side"]
    texts: list[str] = task["texts"]
    prompts: list[str] = task.get("prompts") or [""] * len(texts)

    def one(text: str, prompt: str) -> dict[str, Any]:
        row: dict[str, Any] = {}
        began = time.perf_counter()
        for name, scanner in scanners:
            t0 = time.perf_counter()
            try:
                if side == "input":
                    _, valid, risk = scanner.scan(text)
                else:
                    _, valid, risk = scanner.scan(prompt, text)
            except Exception as exc:  # noqa: BLE001 - a scanner that raises is a result, reported as such
                ms = (time.perf_counter() - t0) * 1000.0
                row[name] = {
                    "ms": ms,
                    "valid": True,
                    "risk": -1.0,
                    "error": f"{type(exc).__name__}: {exc}"[:200],
                }
                continue
            row[name] = {"ms": (time.perf_counter() - t0) * 1000.0, "valid": bool(valid), "risk": risk}
        row["total_ms"] = (time.perf_counter() - began) * 1000.0
        return row

    for text, prompt in list(zip(texts, prompts, strict=True))[: task.get("warmup", 0)]:
        one(text, prompt)
    return [one(text, prompt) for text, prompt in zip(texts, prompts, strict=True)]


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    from llm_guard.util import configure_logger

    configure_logger(log_level="ERROR")
    from importlib.metadata import version

    t0 = time.perf_counter()
    inputs, outputs = build(job["config"])
    build_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "tool": "llm-guard",
        "version": version("llm-guard"),
        "build_seconds": build_s,
        "tasks": {},
    }
    for task in job["tasks"]:
        scanners = inputs if task["side"] == "input" else outputs
        result["tasks"][task["name"]] = run_task(task, scanners)
    Path(sys.argv[2]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
