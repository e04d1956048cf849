"""Build the models and data that ``make demo`` assesses with ``garrison assess model``.

Two classifiers of scikit-learn's 8x8 digits (shipped with scikit-learn, nothing is downloaded), both
trained on the same 900 digits and saved the way projects save them:

- ``digits_cnn.pt``: a small PyTorch CNN, the whole module saved with ``torch.save`` (Garrison loads
  it with its restricted unpickler: ``torch.nn`` layers only, nothing else may run);
- ``digits_forest.joblib``: a scikit-learn random forest, ``joblib.dump``.

``digits_train.npz`` holds the 900 training digits (``x`` of shape (N, 1, 8, 8) in [0, 1], ``y`` the
digit), ``digits_test.npz`` the 897 others. Deterministic: fixed seeds, one torch thread.

Run: ``python examples/assess/train.py`` (needs numpy, scikit-learn, joblib and torch==2.13.0), or
``make examples``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent
SEED = 0
TRAIN = 900


def report(path: Path) -> None:
    """Print what was written, with its size and digest."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    print(f"wrote {path.relative_to(HERE.parent)} ({len(data)} bytes, sha256 {digest}...)")


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits in [0, 1] as (N, 1, 8, 8) float32, shuffled with the seed: 900 to train, the rest to test."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def train_cnn(x: np.ndarray, y: np.ndarray) -> torch.nn.Sequential:
    """Two convolutions and two dense layers, Adam for 15 epochs: about 97% on the test digits."""
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(15):
        for idx in torch.randperm(len(xt), generator=generator).split(32):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            optimiser.step()
    return model.eval()


def main() -> None:
    """Write the data and both models, and print their test accuracy."""
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = split()
    np.savez_compressed(HERE / "digits_train.npz", x=x_train, y=y_train)
    np.savez_compressed(HERE / "digits_test.npz", x=x_test, y=y_test)
    report(HERE / "digits_train.npz")
    report(HERE / "digits_test.npz")

    cnn = train_cnn(x_train, y_train)
    with torch.no_grad():
        accuracy = (cnn(torch.as_tensor(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"digits CNN: test accuracy {accuracy:.3f}")
    torch.save(cnn, HERE / "digits_cnn.pt")
    report(HERE / "digits_cnn.pt")

    forest = RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1)
    forest.fit(x_train.reshape(len(x_train), -1), y_train)
    print(f"digits forest: test accuracy {forest.score(x_test.reshape(len(x_test), -1), y_test):.3f}")
    joblib.dump(forest, HERE / "digits_forest.joblib", compress=3)
    report(HERE / "digits_forest.joblib")


if __name__ == "__main__":
    main()
