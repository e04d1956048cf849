"""Label issues: Garrison's confident learning vs cleanlab on digits with flipped labels.

For each seed, 10% of scikit-learn's digits get a different label at random; out-of-sample
probabilities come from Garrison's ``out_of_sample_probabilities`` (5-fold, standard scaling and
logistic regression), and both tools get the SAME probabilities and labels. cleanlab is AGPL, so it
never runs in Garrison's environment: it lives in its own virtual environment,

    python3 -m venv benchmarks/.work/cleanlab
    benchmarks/.work/cleanlab/bin/pip install cleanlab==2.9.0 scikit-learn numpy

and is called in a subprocess on .npy files, with its default ``find_label_issues`` settings.

    python benchmarks/data/bench_labels.py --seeds 5 --json benchmarks/results/labels.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from garrison.data.labels import METHODS, find_label_issues, out_of_sample_probabilities

HERE = Path(__file__).resolve().parent
CLEANLAB_PYTHON = HERE.parent / ".work" / "cleanlab" / "bin" / "python"
CLEANLAB_SCRIPT = r"""
import json, sys, time
import numpy as np
import cleanlab
from cleanlab.filter import find_label_issues
labels = np.load(sys.argv[1]); probs = np.load(sys.argv[2])
t0 = time.perf_counter()
mask = find_label_issues(labels, probs)
elapsed = time.perf_counter() - t0
np.save(sys.argv[3], mask)
json.dump({"elapsed": elapsed, "version": cleanlab.__version__}, sys.stdout)
"""


def flip_labels(labels: np.ndarray, *, share: float, seed: int, classes: int) -> tuple[np.ndarray, set[int]]:
    """Give ``share`` of the rows a different label, drawn uniformly; the same rule as the tests."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels.shape[0], round(share * labels.shape[0]), replace=False)
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, classes, chosen.size)) % classes
    return noisy, {int(i) for i in chosen}


def score(found: set[int], truth: set[int]) -> dict[str, float]:
    hits = len(found & truth)
    precision = hits / max(len(found), 1)
    recall = hits / max(len(truth), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": len(found)}


def run_cleanlab(labels: np.ndarray, probs: np.ndarray) -> tuple[set[int], float, str]:
    """cleanlab's flagged rows, its time in seconds and its version, from its own environment."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "labels.npy", labels)
        np.save(folder / "probs.npy", probs)
        done = subprocess.run(
            [str(CLEANLAB_PYTHON), "-c", CLEANLAB_SCRIPT, str(folder / "labels.npy"),
             str(folder / "probs.npy"), str(folder / "mask.npy")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        mask = np.load(folder / "mask.npy")
    result = json.loads(done.stdout)
    return {int(i) for i in np.flatnonzero(mask)}, float(result["elapsed"]), str(result["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Garrison label issues vs cleanlab on digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not CLEANLAB_PYTHON.exists():
        print(f"cleanlab is not installed at {CLEANLAB_PYTHON}; see this file's docstring", file=sys.stderr)
        return 2
    features, labels = load_digits(return_X_y=True)
    labels = labels.astype(np.int64)
    tools = [*METHODS, "cleanlab"]
    per_seed: list[dict[str, Any]] = []
    version = ""
    for seed in range(args.seeds):
        noisy, flipped = flip_labels(labels, share=args.share, seed=seed, classes=10)
        start = time.perf_counter()
        probs = out_of_sample_probabilities(features, noisy, seed=seed)
        row: dict[str, Any] = {
            "seed": seed,
            "flipped": len(flipped),
            "cv_seconds": time.perf_counter() - start,
        }
        for method in METHODS:
            start = time.perf_counter()
            found = find_label_issues(noisy, probs, method=method)  # type: ignore[arg-type]
            row[method] = {**score(set(found.indices), flipped), "seconds": time.perf_counter() - start}
            row[method]["estimated"] = found.estimated_issue_count
        found_cl, elapsed, version = run_cleanlab(noisy, probs)
        row["cleanlab"] = {**score(found_cl, flipped), "seconds": elapsed}
        per_seed.append(row)
    mean = {
        tool: {
            key: statistics.fmean(r[tool][key] for r in per_seed)
            for key in ("precision", "recall", "f1", "flagged", "seconds")
        }
        for tool in tools
    }
    results = {
        "dataset": "sklearn digits (1797 rows, 10 classes)",
        "flipped_share": args.share,
        "probabilities": "out_of_sample_probabilities: 5 folds, StandardScaler + LogisticRegression(C=0.03)",
        "cleanlab_version": version,
        "cleanlab_call": "cleanlab.filter.find_label_issues(labels, pred_probs) with defaults",
        "garrison_default_method": "prune_by_margin",
        "per_seed": per_seed,
        "mean": mean,
    }
    print(
        f"{'tool':<22}"
        + "".join(f"  seed {r['seed']} P/R/F1     " for r in per_seed)
        + "  mean P / R / F1      time"
    )
    for tool in tools:
        cells = "".join(
            f"  {r[tool]['precision']:.3f}/{r[tool]['recall']:.3f}/{r[tool]['f1']:.3f}" for r in per_seed
        )
        m = mean[tool]
        label = f"garrison {tool}" if tool != "cleanlab" else f"cleanlab {version}"
        means = f"{m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f}"
        print(f"{label:<30}{cells}  {means}  {m['seconds'] * 1000:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
