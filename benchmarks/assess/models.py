"""The evasion benchmark's data and model: scikit-learn digits and a small seeded CNN.

Imported both by Garrison's benchmark (benchmarks/assess/bench_evasion.py) and by the script that runs
ART in its own virtualenv (benchmarks/assess/art_evasion.py), so both tools attack the same network.
Needs only torch, numpy and scikit-learn; imports nothing from garrison.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

SEED = 0
NB_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)


def digits(seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits in [0, 1] as (N, 1, 8, 8) float32, shuffled with ``seed``: 1,437 to train, 360 to test."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32).reshape(-1, *INPUT_SHAPE)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1437], y[:1437], x[1437:], y[1437:]


def build_cnn() -> torch.nn.Sequential:
    """Conv(1→16, 3×3) ReLU, Conv(16→32, 3×3) ReLU, MaxPool 2, Linear(512→64) ReLU, Linear(64→10): logits."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, NB_CLASSES),
    )


def train_cnn(x: np.ndarray, y: np.ndarray, *, epochs: int = 8, seed: int = SEED) -> torch.nn.Sequential:
    """Adam (lr 1e-3), batches of 32, ``epochs`` passes; seeded, CPU, a few seconds."""
    torch.manual_seed(seed)
    model = build_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), 32):
            idx = order[start : start + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Predicted labels."""
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(1).numpy()
