"""Run ART's evasion attacks on the benchmark CNN and save the adversarial examples and timings.

Runs in ART's own virtualenv (benchmarks/.work/art), never in Garrison's .venv, and imports nothing
from garrison; benchmarks/assess/bench_evasion.py calls it as a subprocess so that ART's numbers sit
beside Garrison's, computed by the same code from the adversarials saved here.

    benchmarks/.work/art/bin/python benchmarks/assess/art_evasion.py \\
        --data IN.npz --model STATE.pt --plan PLAN.json --out OUT.npz --threads 1 --repeat 3

IN.npz: ``x`` (N, 1, 8, 8) float32 in [0, 1], ``y`` (N,) int labels. STATE.pt: state_dict of
models.build_cnn(). PLAN.json: a list of ``{"key", "attack", "eps", "batch_size"}`` (optionally
``"art_attack"``, which overrides ``attack`` here) with attack one of fgsm, pgd-10, pgd-40, apgd-ce,
cw-l2, hsj, autoattack (= autoattack-default), autoattack-std, autoattack-untargeted. OUT.npz: one array of
adversarials per key, and ``seconds``, a JSON string mapping key to the seconds attack.generate() took,
and ``queries``, key to rows through the CNN per sample in the last run (the fastest of ``--repeat`` runs;
CW-L2, HopSkipJump and the AutoAttack variants run once).

Attack parameters (ART 1.20.1): FastGradientMethod(norm=inf, eps); ProjectedGradientDescent(norm=inf,
eps, eps_step=2.5·eps/max_iter, max_iter=10 or 40, num_random_init=1); AutoProjectedGradientDescent(
norm=inf, eps, eps_step=2·eps, max_iter=100, nb_random_init=1, loss_type="cross_entropy");
CarliniL2Method(ART's defaults: confidence=0, learning_rate=0.01, binary_search_steps=10, max_iter=10,
initial_const=0.01); HopSkipJump(norm=2, max_iter=50, max_eval=10000, init_eval=100, init_size=100);
AutoAttack(norm=inf, eps, eps_step=2·eps) with ART's default attack list ("autoattack"), or with
APGD-CE, APGD-DLR (100 iterations, one start) and Square (5000 iterations, p_init=0.8, one restart),
targeted=True ("autoattack-std") or False ("autoattack-untargeted"); see make_attack. ART's default
AutoAttack list builds its attacks with progress bars on (on stderr).
The true labels are passed as ``y`` to every attack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import (
    AutoAttack,
    AutoProjectedGradientDescent,
    CarliniL2Method,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)
from art.estimators.classification import PyTorchClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import INPUT_SHAPE, NB_CLASSES, build_cnn


class CountingModule(torch.nn.Module):
    """The CNN, counting the rows ART pushes through it (its queries, gradient passes included)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Count, then run the CNN (in float32: ART's HopSkipJump hands it float64 arrays)."""
        self.rows += len(x)
        out: torch.Tensor = self.inner(x.float())
        return out


def make_attack(clf: PyTorchClassifier, name: str, eps: float, batch_size: int) -> Any:
    """The ART attack for one plan entry."""
    if name == "fgsm":
        return FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=batch_size)
    if name.startswith("pgd-"):
        steps = int(name.split("-")[1])
        return ProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2.5 * eps / steps,
            max_iter=steps,
            num_random_init=1,
            batch_size=batch_size,
            verbose=False,
        )
    if name == "apgd-ce":
        return AutoProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            max_iter=100,
            targeted=False,
            nb_random_init=1,
            batch_size=batch_size,
            loss_type="cross_entropy",
            verbose=False,
        )
    if name == "cw-l2":
        return CarliniL2Method(clf, batch_size=batch_size, verbose=False)
    if name in ("autoattack", "autoattack-default"):
        # ART's own default list: APGD-CE and APGD-DLR (100 iterations, 5 random starts each), DeepFool,
        # Square (5000 iterations, p_init 0.8, 5 restarts); untargeted only
        return AutoAttack(clf, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=batch_size)
    if name in ("autoattack-std", "autoattack-untargeted"):
        # the nearest ART gets to the standard set (it has no FAB, and its targeted pass runs every attack
        # of the list against each other class in index order): APGD-CE, APGD-DLR and Square with the
        # standard set's budgets, untargeted, then all three targeted at each of the other classes
        def apgd_of(loss: str) -> AutoProjectedGradientDescent:
            return AutoProjectedGradientDescent(
                clf,
                norm=np.inf,
                eps=eps,
                eps_step=2 * eps,
                max_iter=100,
                targeted=False,
                nb_random_init=1,
                batch_size=batch_size,
                loss_type=loss,
                verbose=False,
            )

        square = SquareAttack(
            clf,
            norm=np.inf,
            eps=eps,
            max_iter=5000,
            p_init=0.8,
            nb_restarts=1,
            batch_size=batch_size,
            verbose=False,
        )
        attacks = [apgd_of("cross_entropy"), apgd_of("difference_logits_ratio"), square]
        return AutoAttack(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            attacks=attacks,
            batch_size=batch_size,
            targeted=name == "autoattack-std",
        )
    if name == "hsj":
        return HopSkipJump(
            clf,
            batch_size=batch_size,
            targeted=False,
            norm=2,
            max_iter=50,
            max_eval=10000,
            init_eval=100,
            init_size=100,
            verbose=False,
        )
    raise SystemExit(f"unknown attack {name}")


def main() -> int:
    """Parse the command line, run the plan, write OUT.npz."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="time each attack this often, keep the fastest")
    parser.add_argument("--cw-repeat", type=int, default=1, help="the same for CW-L2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    x, y = data["x"], data["y"]
    inner = build_cnn()
    inner.load_state_dict(torch.load(args.model, map_location="cpu", weights_only=True))
    model = CountingModule(inner).eval()
    clf = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=INPUT_SHAPE,
        nb_classes=NB_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    y_onehot = np.eye(NB_CLASSES, dtype=np.float32)[y]
    seconds: dict[str, float] = {}
    queries: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    for entry in json.loads(args.plan.read_text()):
        times = []
        if entry["attack"] == "cw-l2":
            runs = args.cw_repeat
        elif entry["attack"] in ("hsj", "autoattack", "autoattack-std"):
            runs = 1
        else:
            runs = args.repeat
        for _ in range(runs):
            model.rows = 0
            np.random.seed(0)
            torch.manual_seed(0)
            name = entry.get("art_attack", entry["attack"])
            attack = make_attack(clf, name, float(entry["eps"] or 0), int(entry["batch_size"]))
            t0 = time.perf_counter()
            x_adv = attack.generate(x=x, y=y_onehot)
            times.append(time.perf_counter() - t0)
        seconds[entry["key"]] = min(times)
        queries[entry["key"]] = model.rows / len(x)
        arrays[entry["key"]] = x_adv.astype(np.float32)
        print(f"art {entry['key']}: {seconds[entry['key']]:.2f} s", file=sys.stderr, flush=True)
    np.savez(args.out, seconds=np.array(json.dumps(seconds)), queries=np.array(json.dumps(queries)), **arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
