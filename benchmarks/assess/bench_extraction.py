"""Model extraction, Garrison's copycat beside ART's CopycatCNN: fidelity and accuracy versus queries.

Trains the small CNN of benchmarks/assess/models.py on scikit-learn digits (the victim; seeded, CPU),
then steals it at each query budget (default 100, 250, 500, 1000) with Garrison
(:func:`garrison.assess.extraction.run_extraction`, in this process) and with ART 1.20.1's CopycatCNN (in
its own virtualenv benchmarks/.work/art, as a subprocess: benchmarks/assess/art_extraction.py). Both
use the same thief architecture (models.build_cnn, which is also Garrison's default student for 8×8
images), Adam with the same learning rate, the same epochs and batch size, and query exactly the same
pool rows at each seed and budget (checked: the rows Garrison's victim saw are the rows handed to ART).
Fidelity (agreement with the victim's labels) and accuracy (true labels) are computed by the same code
on the 360 test digits, averaged over ``--seeds``.

The attacker's pool is the victim's 1,437 training digits without their labels: an attacker holding
in-distribution data, the usual copycat setting. Garrison runs four ways: full probabilities, top-1,
label only (the gateway's output controls), and probabilities with ``min_steps=0``, which trains for
exactly ART's number of optimizer steps (Garrison's default trains at least 300 steps, which matters at
small budgets). ART's CopycatCNN trains on one-hot labels even with ``use_probability=True`` (its
PyTorchClassifier reduces float labels to their argmax), and with a logits victim its "probabilities"
are raw logits; both settings are run.

    .venv/bin/python benchmarks/assess/bench_extraction.py [--budgets 100,250,500,1000] [--seeds 0,1,2] \\
        [--threads 1] [--json benchmarks/results/assess-extraction.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from garrison.assess.extraction import run_extraction

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import digits as load_data
from models import predict, train_cnn

ROOT = Path(__file__).resolve().parents[2]
ART_PYTHON = ROOT / "benchmarks" / ".work" / "art" / "bin" / "python"
ART_SCRIPT = ROOT / "benchmarks" / "assess" / "art_extraction.py"
EPOCHS = 30
BATCH = 64
LR = 3e-3
GARRISON_RUNS: dict[str, dict[str, Any]] = {
    "garrison probabilities": {"output": "probabilities"},
    "garrison top1": {"output": "top1"},
    "garrison label": {"output": "label"},
    "garrison probabilities, ART's steps": {"output": "probabilities", "min_steps": 0},
}


class Recorder(torch.nn.Module):
    """The victim, recording every row Garrison sends it (to check both tools query the same rows)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[np.ndarray] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Record, then run the victim."""
        self.seen.append(x.detach().cpu().numpy().copy())
        out: torch.Tensor = self.inner(x)
        return out


def run_garrison(
    victim: torch.nn.Module, pool: np.ndarray, tx: np.ndarray, ty: np.ndarray, budgets: list[int], seed: int
) -> tuple[dict[str, list[dict[str, Any]]], dict[int, np.ndarray]]:
    """Every Garrison variant at one seed; also the rows each budget queried (from the recorder)."""
    out: dict[str, list[dict[str, Any]]] = {}
    rows: dict[int, np.ndarray] = {}
    for name, kw in GARRISON_RUNS.items():
        rec = Recorder(victim).eval()
        report = run_extraction(
            rec, pool, tx, ty, budgets=budgets, seed=seed, epochs=EPOCHS, batch_size=BATCH, **kw
        )
        out[name] = [
            {"queries": p.queries, "fidelity": p.fidelity, "accuracy": p.accuracy, "seconds": p.seconds}
            for p in report.points
        ]
        assert report.queries == max(budgets)
        if not rows:
            # the first call is the probe (≤ 64 test rows), then the test set, then the attacker's rows
            seen = np.concatenate(rec.seen)
            attacker = seen[len(seen) - report.queries :]
            rows = {b: attacker[:b] for b in budgets}
        print(
            f"garrison {name} seed={seed}: {[round(p.fidelity, 3) for p in report.points]}", file=sys.stderr
        )
    return out, rows


def run_art(
    victim: torch.nn.Module,
    tx: np.ndarray,
    ty: np.ndarray,
    rows: dict[int, dict[int, np.ndarray]],
    budgets: list[int],
    seeds: list[int],
    threads: int,
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """CopycatCNN in ART's virtualenv on exactly the rows Garrison queried."""
    victim_labels = predict(victim, tx)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        arrays = {f"pool_{s}_{b}": rows[s][b] for s in seeds for b in budgets}
        np.savez(t / "in.npz", test_x=tx, **arrays)
        torch.save(victim.state_dict(), t / "victim.pt")
        plan = {
            "seeds": seeds,
            "budgets": budgets,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "lr": LR,
            "use_probability": [False, True],
        }
        (t / "plan.json").write_text(json.dumps(plan))
        cmd = [str(ART_PYTHON), str(ART_SCRIPT), "--data", str(t / "in.npz"), "--model", str(t / "victim.pt")]
        cmd += ["--plan", str(t / "plan.json"), "--out", str(t / "out.json"), "--threads", str(threads)]
        subprocess.run(cmd, check=True)
        raw = json.loads((t / "out.json").read_text())
    out: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in raw:
        name = "art copycat use_probability" if r["use_probability"] else "art copycat"
        pred = np.asarray(r["pred"])
        out.setdefault(name, {}).setdefault(r["seed"], []).append(
            {
                "queries": r["queries"],
                "fidelity": float(np.mean(pred == victim_labels)),
                "accuracy": float(np.mean(pred == ty)),
                "seconds": r["seconds"],
            }
        )
    return out


def mean_curve(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Average the points of several seeds, budget by budget."""
    out = []
    for pts in zip(*per_seed, strict=True):
        out.append(
            {
                "queries": pts[0]["queries"],
                "fidelity": float(np.mean([p["fidelity"] for p in pts])),
                "fidelity_min": float(np.min([p["fidelity"] for p in pts])),
                "fidelity_max": float(np.max([p["fidelity"] for p in pts])),
                "accuracy": float(np.mean([p["accuracy"] for p in pts])),
                "seconds": float(np.mean([p["seconds"] for p in pts])),
            }
        )
    return out


def main() -> int:
    """Run both tools, print the markdown table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="100,250,500,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "assess-extraction.json"
    )
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    started = time.time()
    x_train, y_train, tx, ty = load_data()
    victim = train_cnn(x_train, y_train)
    victim_accuracy = float(np.mean(predict(victim, tx) == ty))
    pool = x_train
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    rows: dict[int, dict[int, np.ndarray]] = {}
    for seed in seeds:
        out, rows[seed] = run_garrison(victim, pool, tx, ty, budgets, seed)
        for name, pts in out.items():
            curves.setdefault(name, []).append(pts)
    art = run_art(victim, tx, ty, rows, budgets, seeds, args.threads)
    for name, by_seed in art.items():
        curves[name] = [by_seed[s] for s in seeds]
        for pts in curves[name]:
            assert [p["queries"] for p in pts] == budgets, f"{name} queried {[p['queries'] for p in pts]}"
    summary = {name: mean_curve(per_seed) for name, per_seed in curves.items()}

    lines = [
        f"Victim: digits CNN, test accuracy {victim_accuracy:.1%}; pool {len(pool):,} unlabeled digits; "
        f"{len(tx)} test digits; thief {EPOCHS} epochs, batch {BATCH}, Adam lr {LR:g}; "
        f"mean of seeds {seeds}.",
        "",
        "| attack (what the victim exposes) | "
        + " | ".join(f"{b:,} q: fidelity / acc" for b in budgets)
        + " |",
        "| --- |" + " --- |" * len(budgets),
    ]
    for name, pts in summary.items():
        cells = " | ".join(f"{p['fidelity']:.1%} / {p['accuracy']:.1%}" for p in pts)
        lines.append(f"| {name} | {cells} |")
    table = "\n".join(lines)
    print(table)
    result = {
        "benchmark": "assess-extraction",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "threads": args.threads,
        "victim_accuracy": victim_accuracy,
        "pool_size": len(pool),
        "test_samples": len(tx),
        "budgets": budgets,
        "seeds": seeds,
        "thief": {"architecture": "models.build_cnn", "epochs": EPOCHS, "batch_size": BATCH, "lr": LR},
        "summary": summary,
        "per_seed": curves,
        "seconds_total": time.time() - started,
        "table_markdown": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
