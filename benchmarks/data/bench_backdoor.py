"""Backdoor detection side by side with the Adversarial Robustness Toolbox, on BadNets-poisoned digits.

The setup is the tests' (tests/data/backdoor_setup.py): scikit-learn's digits scaled to [0, 1], 10%
of the training rows get a 2x2 bright patch in the bottom-right corner and label 0 (about half of
class 0 is then poison), and a seeded 64-64-32-10 MLP learns the backdoor. Per seed, in the same run:

* Garrison: ``spectral_signatures`` and ``activation_clustering`` given the model (``predict``), on
  the inputs, plus activation clustering on the first hidden layer's activations (``layer 1``);
* ART 1.20.1: ``ActivationDefence`` and ``SpectralSignatureDefense`` with their documented defaults
  (benchmarks/data/art_backdoor.py, run in ART's own venv benchmarks/.work/art as a subprocess: see
  ../shared/design/PEERS.md; if the venv is missing, ART's rows are skipped and the JSON says so).

Precision and recall are of the flagged rows against the truly poisoned rows. Garrison's seconds
include its model calls (the transplant test); ART's include its own forward pass.

    .venv/bin/python benchmarks/data/bench_backdoor.py --seeds 5 --json benchmarks/results/backdoor.json
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

from garrison.data.backdoor import (
    activation_clustering,
    spectral_signatures,
    torch_activations,
    torch_predict,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.data.backdoor_setup import TARGET, badnets, precision_recall, predict, train_mlp, trigger

ROOT = Path(__file__).resolve().parents[2]

ART_PYTHON = ROOT / "benchmarks" / ".work" / "art" / "bin" / "python"
ART_SCRIPT = ROOT / "benchmarks" / "data" / "art_backdoor.py"


def _row(
    tool: str, method: str, seed: int, flagged: Any, poisoned: np.ndarray, seconds: float
) -> dict[str, Any]:
    p, r = precision_recall(np.asarray(flagged, dtype=np.int64), poisoned)
    return {
        "tool": tool,
        "method": method,
        "seed": seed,
        "precision": p,
        "recall": r,
        "flagged": len(flagged),
        "seconds": seconds,
    }


def _garrison(
    seed: int, xtr: np.ndarray, ytr: np.ndarray, model: Any, poisoned: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    runs = (
        ("spectral-signatures", spectral_signatures, None),
        ("activation-clustering", activation_clustering, None),
        ("activation-clustering (layer 1)", activation_clustering, "1"),
    )
    for name, method, layer in runs:
        t0 = time.perf_counter()
        feats = xtr if layer is None else torch_activations(model, xtr, layer)
        found = method(feats, ytr, predict=torch_predict(model), inputs=xtr)
        rows.append(_row("garrison", name, seed, found.indices, poisoned, time.perf_counter() - t0))
    return rows


def _art(
    seed: int, xtr: np.ndarray, ytr: np.ndarray, model: Any, poisoned: np.ndarray
) -> list[dict[str, Any]]:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        data, state, out = Path(tmp, "in.npz"), Path(tmp, "state.pt"), Path(tmp, "out.json")
        np.savez(data, x=xtr.astype(np.float32), y=ytr.astype(np.int64))
        torch.save(model.state_dict(), state)
        cmd = [
            str(ART_PYTHON),
            str(ART_SCRIPT),
            "--data",
            str(data),
            "--model",
            str(state),
            "--out",
            str(out),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        report = json.loads(out.read_text())
    return [
        _row("art", name, seed, report[name]["flagged"], poisoned, report[name]["seconds"])
        for name in ("activation-defence", "spectral-signature-defense")
    ]


def main() -> int:
    """Run the seeds, print one row per tool, method and seed and the means, optionally save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with_art = ART_PYTHON.exists()
    rows: list[dict[str, Any]] = []
    models = []
    for seed in range(args.seeds):
        xtr, ytr, xte, yte, poisoned = badnets(seed)
        model = train_mlp(xtr, ytr, seed)
        models.append(
            {
                "seed": seed,
                "clean_accuracy": float((predict(model, xte) == yte).mean()),
                "attack_success": float((predict(model, trigger(xte[yte != TARGET])) == TARGET).mean()),
                "poisoned_rows": int(poisoned.size),
            }
        )
        rows += _garrison(seed, xtr, ytr, model, poisoned)
        if with_art:
            rows += _art(seed, xtr, ytr, model, poisoned)
    for row in rows:
        print(
            f"seed {row['seed']} {row['tool']:<8} {row['method']:<32} P {row['precision']:.2f} "
            f"R {row['recall']:.2f} flagged {row['flagged']:>4} {row['seconds']:.2f} s"
        )
    summary = []
    for key in dict.fromkeys((r["tool"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["tool"], r["method"]) == key]
        summary.append(
            {
                "tool": key[0],
                "method": key[1],
                "precision": mean(r["precision"] for r in mine),
                "min_precision": min(r["precision"] for r in mine),
                "recall": mean(r["recall"] for r in mine),
                "min_recall": min(r["recall"] for r in mine),
                "seconds": mean(r["seconds"] for r in mine),
            }
        )
    print("\nmean over seeds (min in brackets)")
    for s in summary:
        print(
            f"{s['tool']:<8} {s['method']:<32} P {s['precision']:.2f} ({s['min_precision']:.2f}) "
            f"R {s['recall']:.2f} ({s['min_recall']:.2f}) {s['seconds']:.2f} s"
        )
    if args.json:
        doc = {
            "benchmark": "backdoor",
            "setup": "digits, 2x2 corner trigger on 10% of training rows relabelled 0, 64-64-32-10 MLP",
            "art": "1.20.1" if with_art else "not run: benchmarks/.work/art missing",
            "models": models,
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
