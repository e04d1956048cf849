"""Run ART's CopycatCNN against the benchmark CNN and save the thieves' test predictions and timings.

Runs in ART's own virtualenv (benchmarks/.work/art), never in Garrison's .venv, and imports nothing
from garrison; benchmarks/assess/bench_extraction.py calls it as a subprocess so that ART's numbers sit
beside Garrison's, computed by the same code from the predictions saved here.

    benchmarks/.work/art/bin/python benchmarks/assess/art_extraction.py \\
        --data IN.npz --model STATE.pt --plan PLAN.json --out OUT.json --threads 1

IN.npz: ``test_x`` (N, 1, 8, 8) float32 and, per seed S and budget B, ``pool_S_B``: the exact rows the
attacker queries (the same rows Garrison queries at that seed and budget). STATE.pt: state_dict of the
victim, models.build_cnn(). PLAN.json: ``{"seeds", "budgets", "epochs", "batch_size", "lr",
"use_probability": [false, true]}``. OUT.json: a list of ``{"seed", "budget", "use_probability",
"queries", "seconds", "pred"}``, ``pred`` the thief's labels on ``test_x``, ``queries`` the rows the
victim saw during ``extract``.

Parameters (ART 1.20.1): CopycatCNN(victim, batch_size_fit=batch_size, batch_size_query=batch_size,
nb_epochs=epochs, nb_stolen=B, use_probability=…); the thief is a PyTorchClassifier around a fresh
models.build_cnn() (seeded with the seed), CrossEntropyLoss, Adam(lr). The victim is a PyTorchClassifier
around the benchmark CNN (it outputs logits, which ART's ``predict`` passes on as they are).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from art.attacks.extraction import CopycatCNN
from art.estimators.classification import PyTorchClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import INPUT_SHAPE, NB_CLASSES, build_cnn


class CountingModule(torch.nn.Module):
    """The victim CNN, counting the rows ART pushes through it."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Count, then run the CNN."""
        self.rows += len(x)
        out: torch.Tensor = self.inner(x.float())
        return out


def classifier(model: torch.nn.Module, lr: float) -> PyTorchClassifier:
    """An ART PyTorchClassifier for the digits CNN layout."""
    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        input_shape=INPUT_SHAPE,
        nb_classes=NB_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def main() -> int:
    """Parse the command line, run every (seed, budget, use_probability), write OUT.json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    plan = json.loads(args.plan.read_text())
    inner = build_cnn()
    inner.load_state_dict(torch.load(args.model, map_location="cpu", weights_only=True))
    victim_module = CountingModule(inner).eval()
    victim = classifier(victim_module, plan["lr"])
    test_x = data["test_x"]
    results = []
    for use_probability in plan["use_probability"]:
        for seed in plan["seeds"]:
            for budget in plan["budgets"]:
                x = data[f"pool_{seed}_{budget}"]
                np.random.seed(seed)
                torch.manual_seed(seed)
                thief = classifier(build_cnn(), plan["lr"])
                attack = CopycatCNN(
                    victim,
                    batch_size_fit=plan["batch_size"],
                    batch_size_query=plan["batch_size"],
                    nb_epochs=plan["epochs"],
                    nb_stolen=len(x),
                    use_probability=bool(use_probability),
                )
                victim_module.rows = 0
                t0 = time.perf_counter()
                stolen = attack.extract(x, thieved_classifier=thief)
                seconds = time.perf_counter() - t0
                pred = stolen.predict(test_x, batch_size=256).argmax(1)
                results.append(
                    {
                        "seed": seed,
                        "budget": budget,
                        "use_probability": bool(use_probability),
                        "queries": victim_module.rows,
                        "seconds": seconds,
                        "pred": pred.astype(int).tolist(),
                    }
                )
                print(
                    f"art copycat p={use_probability} seed={seed} {budget}: {seconds:.2f} s", file=sys.stderr
                )
    args.out.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
