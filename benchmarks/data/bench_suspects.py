"""Duplicates with conflicting labels and outliers, side by side with cleanlab's Datalab, on digits.

The planted set is the tests' (tests/data/test_suspects.py): scikit-learn's digits plus 20 exact and
20 near copies of real rows under another label (near: three ink pixels one grey level off) and 20
rows of uniform noise with random labels. Truth for duplicates is every copy and its original (80
rows); for outliers the 20 noise rows. Per seed, in the same run:

* Garrison: ``conflicting_duplicates`` and ``outliers`` with their defaults;
* cleanlab 2.9.0 (AGPL, in its own venv benchmarks/.work/cleanlab with ``pip install
  'cleanlab[datalab]==2.9.0'``, run as a subprocess):
  ``Datalab.find_issues(features=X, issue_types={"near_duplicate": {}, "outlier": {}})`` with its
  defaults; its near-duplicate flags do not look at labels, so both its raw flags and those left
  after keeping only sets with more than one label are scored.

    .venv/bin/python benchmarks/data/bench_suspects.py --seeds 3 --json benchmarks/results/suspects.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.data.test_suspects import planted

from garrison.data.suspects import conflicting_duplicates, outliers

ROOT = Path(__file__).resolve().parents[2]
CLEANLAB_PYTHON = ROOT / "benchmarks" / ".work" / "cleanlab" / "bin" / "python"
CLEANLAB_SCRIPT = r"""
import json, sys, time
import numpy as np
from cleanlab import Datalab
data = np.load(sys.argv[1])
x, y = data["x"], data["y"]
lab = Datalab(data={"y": y}, label_name="y", verbosity=0)
t0 = time.perf_counter()
lab.find_issues(features=x, issue_types={"near_duplicate": {}, "outlier": {}})
seconds = time.perf_counter() - t0
issues = lab.get_issues()
near = issues.index[issues["is_near_duplicate_issue"]].tolist()
sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
conflict = sorted({int(i) for i in near if len({int(y[i]), *(int(y[j]) for j in sets[i])}) > 1})
out = issues.index[issues["is_outlier_issue"]].tolist()
print(json.dumps({"near": [int(i) for i in near], "near_conflict": conflict,
                  "outliers": [int(i) for i in out], "seconds": seconds}))
"""


def _score(flagged: set[int], truth: set[int]) -> dict[str, float]:
    hits = len(flagged & truth)
    return {"precision": hits / max(1, len(flagged)), "recall": hits / len(truth), "flagged": len(flagged)}


def main() -> int:
    """Run the seeds, print and optionally save the precision and recall of each tool and check."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        x, y, copied, noise = planted(seed)
        t0 = time.perf_counter()
        groups = conflicting_duplicates(x, y)
        far = outliers(x, y)
        seconds = time.perf_counter() - t0
        dup = {r for g in groups for r in g.rows}
        rows.append(
            {
                "tool": "garrison",
                "check": "duplicates",
                "seed": seed,
                **_score(dup, copied),
                "seconds": seconds,
            }
        )
        rows.append(
            {"tool": "garrison", "check": "outliers", "seed": seed, **_score({o.row for o in far}, noise)}
        )
        if CLEANLAB_PYTHON.exists():
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp, "d.npz")
                np.savez(data, x=x, y=y)
                done = subprocess.run(
                    [str(CLEANLAB_PYTHON), "-c", CLEANLAB_SCRIPT, str(data)],
                    check=True, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
            found = json.loads(done.stdout.strip().splitlines()[-1])
            near, conflict = set(found["near"]), set(found["near_conflict"])
            raw = _score(near, copied)
            rows.append(
                {
                    "tool": "cleanlab",
                    "check": "duplicates (any label)",
                    "seed": seed,
                    **raw,
                    "seconds": found["seconds"],
                }
            )
            rows.append({"tool": "cleanlab", "check": "duplicates", "seed": seed, **_score(conflict, copied)})
            rows.append(
                {
                    "tool": "cleanlab",
                    "check": "outliers",
                    "seed": seed,
                    **_score(set(found["outliers"]), noise),
                }
            )
    summary = []
    for key in dict.fromkeys((r["tool"], r["check"]) for r in rows):
        mine = [r for r in rows if (r["tool"], r["check"]) == key]
        summary.append(
            {
                "tool": key[0],
                "check": key[1],
                "precision": mean(r["precision"] for r in mine),
                "recall": mean(r["recall"] for r in mine),
                "flagged": mean(r["flagged"] for r in mine),
                "seconds": mean(r["seconds"] for r in mine if "seconds" in r)
                if "seconds" in mine[0]
                else None,
            }
        )
    for s in summary:
        secs = f" {s['seconds']:.2f} s (both checks)" if s["seconds"] is not None else ""
        print(
            f"{s['tool']:<9} {s['check']:<24} P {s['precision']:.2f} R {s['recall']:.2f} "
            f"flagged {s['flagged']:.0f}{secs}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"benchmark": "suspects", "summary": summary, "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
