"""The BadNets setup on scikit-learn's digits, shared by the backdoor tests and benchmark."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TARGET = 0


def trigger(images: np.ndarray) -> np.ndarray:
    """Set a 2x2 bright patch in the bottom-right corner of flattened 8x8 images scaled to [0, 1]."""
    out = images.reshape(-1, 8, 8).copy()
    out[:, 6:8, 6:8] = 1.0
    return out.reshape(-1, 64)


def badnets(
    seed: int, rate: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test split with ``rate`` of the training rows triggered and relabelled to TARGET."""
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    poisoned = rng.choice(np.flatnonzero(ytr != TARGET), round(rate * len(ytr)), replace=False)
    xtr, ytr = xtr.copy(), ytr.copy()
    if poisoned.size:
        xtr[poisoned] = trigger(xtr[poisoned])
        ytr[poisoned] = TARGET
    return xtr, ytr, xte, yte, np.sort(poisoned)


def train_mlp(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """A seeded 64-64-32-10 ReLU MLP trained full-batch with Adam (a few seconds on two cores)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Predicted classes."""
    import torch

    with torch.no_grad():
        return np.asarray(model(torch.tensor(x, dtype=torch.float32)).argmax(1).numpy())


def precision_recall(flagged: np.ndarray, poisoned: np.ndarray) -> tuple[float, float]:
    """Precision and recall of ``flagged`` rows against the truly ``poisoned`` rows."""
    hits = len(set(flagged.tolist()) & set(poisoned.tolist()))
    return hits / max(1, len(flagged)), hits / max(1, len(poisoned))
