"""Run ART's two backdoor-poisoning detectors on one poisoned training set and report what they flag.

Runs the Adversarial Robustness Toolbox's ActivationDefence (activation clustering: nb_clusters=2,
nb_dims=10, reduce="PCA", ART's defaults otherwise, so cluster_analysis="smaller") and
SpectralSignatureDefense (batch_size=128, eps_multiplier=1.5, expected_pp_poison=--poison-rate)
on the given data and model, timing each detect_poison() call. Garrison's backdoor benchmark calls
this as a subprocess so ART's results sit beside Garrison's own.

    benchmarks/.work/art/bin/python benchmarks/data/art_backdoor.py \\
        --data IN.npz --model STATE.pt --out OUT.json [--poison-rate 0.1]

IN.npz holds ``x`` (float32, (N, 64), digits flattened and scaled to [0, 1]) and ``y`` (int labels
0..9). STATE.pt is a torch state_dict of Sequential(Linear(64, 64), ReLU, Linear(64, 32), ReLU,
Linear(32, 10)). OUT.json gets ``{"art_version": ..., "activation-defence": {"flagged": [...],
"seconds": t}, "spectral-signature-defense": {...}}``, flagged being sorted indices of rows ART
marked as poison (is_clean_lst[i] == 0).

Both defences take the activations of ART's "protected layer", the last entry of the classifier's
layer_names, which for this Sequential is the logits layer ("4").

This script runs in ART's own virtualenv (benchmarks/.work/art), never in Garrison's .venv, and
imports nothing from garrison.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import art
import numpy as np
import torch
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
from art.estimators.classification import PyTorchClassifier

SEED = 0
NB_CLASSES = 10
N_FEATURES = 64


def build_model() -> torch.nn.Sequential:
    """The benchmark's MLP, layer for layer as Garrison trains it."""
    return torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, NB_CLASSES),
    )


def seed_everything(seed: int) -> None:
    """Seed the RNGs ART draws from (MiniBatchKMeans takes numpy's global state)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_classifier(state_path: Path) -> PyTorchClassifier:
    """Rebuild the model, load its weights and wrap it for ART."""
    model = build_model()
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=(N_FEATURES,),
        nb_classes=NB_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def flagged(is_clean: list[int]) -> list[int]:
    """Sorted indices ART marked as poison (is_clean_lst[i] == 0)."""
    return sorted(int(i) for i in np.flatnonzero(np.asarray(is_clean) == 0))


def run(x: np.ndarray, y: np.ndarray, classifier: PyTorchClassifier, poison_rate: float) -> dict[str, Any]:
    """Run both defences and return the report dictionary written to OUT.json."""
    y_onehot = np.eye(NB_CLASSES, dtype=np.float32)[y]
    result: dict[str, Any] = {"art_version": art.__version__}

    seed_everything(SEED)
    activation = ActivationDefence(classifier, x, y_onehot)
    t0 = time.perf_counter()
    _, is_clean = activation.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
    elapsed = time.perf_counter() - t0
    result["activation-defence"] = {"flagged": flagged(is_clean), "seconds": elapsed}

    seed_everything(SEED)
    spectral = SpectralSignatureDefense(
        classifier, x, y_onehot, batch_size=128, eps_multiplier=1.5, expected_pp_poison=poison_rate
    )
    t0 = time.perf_counter()
    _, is_clean = spectral.detect_poison()
    elapsed = time.perf_counter() - t0
    result["spectral-signature-defense"] = {"flagged": flagged(is_clean), "seconds": elapsed}
    return result


def main() -> int:
    """Parse the command line, run the defences and write OUT.json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="npz with x (N, 64) float32 and y (N,) labels"
    )
    parser.add_argument("--model", type=Path, required=True, help="torch state_dict of the benchmark MLP")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON report")
    parser.add_argument(
        "--poison-rate", type=float, default=0.1, help="expected_pp_poison for spectral signatures"
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("art").setLevel(logging.WARNING)
    seed_everything(SEED)

    with np.load(args.data) as data:
        x = np.ascontiguousarray(data["x"], dtype=np.float32)
        y = np.asarray(data["y"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES or y.shape != (x.shape[0],):
        print(
            f"art_backdoor: expected x (N, {N_FEATURES}) and y (N,), got {x.shape} and {y.shape}",
            file=sys.stderr,
        )
        return 2
    if y.size and (y.min() < 0 or y.max() >= NB_CLASSES):
        print(f"art_backdoor: labels must lie in 0..{NB_CLASSES - 1}", file=sys.stderr)
        return 2

    result = run(x, y, load_classifier(args.model), args.poison_rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
