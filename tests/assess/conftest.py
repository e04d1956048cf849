"""Tiny models trained in the tests (well under two seconds each) on a subset of scikit-learn digits."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    """One torch thread: on a small shared machine, more threads only contend (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit_quietly(estimator: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Fit with few iterations; whether it converged does not matter to the tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x, y)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits flattened to 64 features in [0, 1]: 1,200 rows to train, the next 120 to attack."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    return x[:1200], y[:1200], x[1200:1320], y[1200:1320]


def train_mlp(x: np.ndarray, y: np.ndarray) -> torch.nn.Sequential:
    """64-32-10 ReLU MLP, full-batch Adam, seeded."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(80):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="session")
def mlp(digits: Any) -> torch.nn.Sequential:
    """The torch MLP, outputting logits."""
    return train_mlp(digits[0][:600], digits[1][:600])


@pytest.fixture(scope="session")
def logreg(digits: Any) -> LogisticRegression:
    """Multinomial logistic regression."""
    return fit_quietly(LogisticRegression(max_iter=60), digits[0][:600], digits[1][:600])


@pytest.fixture(scope="session")
def sk_mlp(digits: Any) -> MLPClassifier:
    """A small scikit-learn MLP (converged or not: only its weights matter)."""
    return fit_quietly(
        MLPClassifier(hidden_layer_sizes=(24,), max_iter=60, random_state=0), digits[0], digits[1]
    )


@pytest.fixture(scope="session")
def forest(digits: Any) -> RandomForestClassifier:
    """A random forest: black box, probabilities only."""
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(digits[0], digits[1])
