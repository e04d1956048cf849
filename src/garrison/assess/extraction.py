"""Model extraction (copycat): how well an attacker with query access can copy the model, per query budget.

The attacker holds natural, unlabeled data (the *query pool*: images, rows of the same kind as the
model's inputs, not necessarily from its training set), sends some of it to the model, and trains a
*student* on the answers. :func:`run_extraction` does that for each query budget and measures, on a
held-out test set:

- *fidelity*: the share of test inputs on which the student predicts the victim's label, the measure
  of a successful theft (the student behaves like the model, right or wrong);
- *accuracy* of the student on the true labels, beside the victim's own.

What the victim exposes is explicit (``output``): ``"probabilities"`` (the full probability vector),
``"topK"`` (``"top1"``, ``"top3"``, …: the K largest probabilities, the rest spread evenly over the
other classes, as an attacker would read a top-K API), or ``"label"`` (the predicted label only, the
gateway's label-only output control). Logits are never used as targets: a model that outputs logits
is queried for probabilities through its adapter, which applies the softmax, and the report says so
(:attr:`ExtractionReport.conversion`). Training a student on raw logits as if they were probabilities
is the mistake that makes ART's KnockoffNets fail on a logits model.

Queries are counted exactly: every row sent to the victim on the attacker's behalf. The budgets are
nested (the pool is shuffled once with ``seed``; budget *b* uses its first *b* rows), so the largest
budget is what the whole curve costs; ``max_queries`` caps it and budgets above the cap are skipped
with a note. The victim's answers on the test set (to measure fidelity) are the assessor's, not the
attacker's, and are counted apart (:attr:`ExtractionReport.evaluation_queries`).

Adaptive sampling (``sampling="uncertainty"``, in the spirit of Knockoff Nets' adaptive strategy, with
the student's own uncertainty as the signal): each budget after the first adds the unqueried pool rows
the current student is least sure of. Choosing them costs no victim queries.

The default student is a small network built from the data's shape — a two-layer CNN for image
batches ``(N, C, H, W)`` with ``H, W ≥ 4``, a one-hidden-layer MLP otherwise — trained from scratch
per budget with Adam on the soft (or one-hot) targets, for ``epochs`` passes but at least
``min_steps`` steps, seeded. ``student=`` takes any ``train_fn(x, soft_y) -> model`` instead (a torch
module, a scikit-learn estimator, or an adapter).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from garrison.assess.adapters import (
    ModelAdapter,
    OutputKind,
    SklearnModel,
    as_model,
    require_torch,
    to_numpy,
)
from garrison.core.errors import InputError

__all__ = [
    "DEFAULT_BUDGETS",
    "SAMPLINGS",
    "ExtractionPoint",
    "ExtractionReport",
    "StudentTrainer",
    "default_student",
    "parse_output",
    "run_extraction",
]

DEFAULT_BUDGETS: tuple[int, ...] = (100, 250, 500, 1000, 2000)
"""Query budgets measured when none are given."""

StudentTrainer = Callable[[np.ndarray, np.ndarray], Any]
"""``train_fn(x, soft_y) -> model``: trains a student on inputs and (N, C) target probabilities."""

_TOPK = re.compile(r"^top(\d+)$")

SAMPLINGS: tuple[str, ...] = ("random", "uncertainty")
"""How :func:`run_extraction` picks the pool rows to query."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionPoint:
    """The stolen model at one query budget."""

    budget: int
    """The budget asked for."""
    queries: int
    """Rows the attacker sent to the victim to train this student (the budget, or the pool if smaller)."""
    fidelity: float
    """Share of the test inputs on which the student's label equals the victim's (0..1)."""
    accuracy: float
    """The student's accuracy on the true test labels (0..1)."""
    seconds: float
    """Wall-clock time of this point: the victim queries it added and the student's training."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionReport:
    """Everything one :func:`run_extraction` call measured."""

    victim: str
    """The victim's name (class name, or the adapter's name)."""
    victim_output_kind: str
    """What the victim's raw output is: ``logits``, ``probabilities``, ``log-probabilities`` or ``labels``."""
    output: str
    """What the attacker was shown: ``probabilities``, ``topK`` or ``label``."""
    soft_labels: bool
    """Whether the student trained on probability vectors (False: one-hot labels)."""
    conversion: str
    """How the victim's output became training targets, in words (e.g. ``softmax of the logits``)."""
    victim_accuracy: float
    """The victim's accuracy on the true test labels (0..1)."""
    test_samples: int
    """Size of the held-out test set fidelity and accuracy are measured on."""
    pool_size: int
    """Rows in the attacker's query pool."""
    queries: int
    """Rows the attacker sent to the victim in all (the largest budget measured)."""
    evaluation_queries: int
    """Rows the assessment sent to the victim to label the test set (not the attacker's)."""
    max_queries: int | None
    """The query cap, if one was set."""
    student: str
    """The student: the default network's layout, or the name of the caller's ``train_fn``."""
    seed: int
    """Seed of the pool shuffle and the student's training."""
    sampling: str
    """How pool rows were chosen: ``random``, or ``uncertainty`` (adaptive, knockoff-style)."""
    points: tuple[ExtractionPoint, ...] = ()
    """One entry per budget measured, ascending."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader should know (budgets skipped or clipped, an output mode the victim lacks, …)."""

    def curve(self) -> tuple[tuple[int, float], ...]:
        """``(queries, fidelity)`` points, ascending."""
        return tuple((p.queries, p.fidelity) for p in self.points)

    def accuracy_curve(self) -> tuple[tuple[int, float], ...]:
        """``(queries, student accuracy)`` points, ascending."""
        return tuple((p.queries, p.accuracy) for p in self.points)

    def fidelity_at(self, queries: int) -> float:
        """Fidelity of the student trained on exactly ``queries`` queries; ``KeyError`` if not measured."""
        for p in self.points:
            if p.queries == queries:
                return p.fidelity
        raise KeyError(f"no point with {queries} queries")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, for reports."""
        return {
            "victim": self.victim,
            "victim_output_kind": self.victim_output_kind,
            "output": self.output,
            "soft_labels": self.soft_labels,
            "conversion": self.conversion,
            "victim_accuracy": self.victim_accuracy,
            "test_samples": self.test_samples,
            "pool_size": self.pool_size,
            "queries": self.queries,
            "evaluation_queries": self.evaluation_queries,
            "max_queries": self.max_queries,
            "student": self.student,
            "seed": self.seed,
            "sampling": self.sampling,
            "points": [
                {
                    "budget": p.budget,
                    "queries": p.queries,
                    "fidelity": p.fidelity,
                    "accuracy": p.accuracy,
                    "seconds": p.seconds,
                }
                for p in self.points
            ],
            "notes": list(self.notes),
        }


def parse_output(output: str) -> int | None:
    """The K of an output mode: ``None`` for ``probabilities``, 0 for ``label``, K for ``topK``."""
    if output == "probabilities":
        return None
    if output == "label":
        return 0
    m = _TOPK.match(output)
    if m and int(m.group(1)) >= 1:
        return int(m.group(1))
    raise InputError(
        f"unknown extraction output mode {output!r}",
        hint="use 'probabilities', 'label', or 'topK' such as 'top1'",
    )


class _CountingVictim:
    """The victim as the attacker reaches it: every row counted, answers shaped by the output mode."""

    def __init__(self, model: ModelAdapter, k: int | None, n_classes: int) -> None:
        self.model = model
        self.k = k
        self.n_classes = n_classes
        self.rows = 0

    def answer(self, x: np.ndarray) -> np.ndarray:
        """Targets (N, C) float32 for ``x``: probabilities, top-K probabilities, or one-hot labels."""
        self.rows += len(x)
        if self.k == 0:
            onehot: np.ndarray = np.eye(self.n_classes, dtype=np.float32)[self.model.predict(x)]
            return onehot
        p = self.model.probabilities(x).astype(np.float64)
        if self.k is None or self.k >= self.n_classes:
            return _normalise(p)
        return _top_k(p, self.k)


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    out: np.ndarray = (p / s).astype(np.float32)
    return out


def _top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Keep the K largest probabilities of each row; spread the remaining mass evenly over the others."""
    n, c = p.shape
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    kept = np.zeros_like(p)
    rows = np.arange(n)[:, None]
    kept[rows, top] = p[rows, top]
    rest = np.clip(1.0 - kept.sum(axis=1, keepdims=True), 0.0, None) / (c - k)
    out = np.where(kept > 0, kept, 0.0)
    mask = np.ones_like(p, dtype=bool)
    mask[rows, top] = False
    out = out + mask * rest
    return _normalise(out)


def _conversion(kind: OutputKind, k: int | None) -> str:
    if k == 0:
        return "one-hot of the predicted label"
    base = {
        OutputKind.LOGITS: "softmax of the logits",
        OutputKind.PROBABILITIES: "the probabilities as returned",
        OutputKind.LOG_PROBABILITIES: "exp of the log-probabilities",
        OutputKind.LABELS: "one-hot of the predicted label (the victim returns labels only)",
    }[kind]
    if k is None or kind is OutputKind.LABELS:
        return base
    return f"{base}, top-{k} kept, the rest spread evenly over the other classes"


class _Student:
    """The default student's layout, built from one input's shape."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, hidden: int) -> None:
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.hidden = hidden
        self.is_cnn = len(input_shape) == 3 and input_shape[1] >= 4 and input_shape[2] >= 4

    def describe(self) -> str:
        if self.is_cnn:
            c, h, w = self.input_shape
            fc = 32 * (h // 2) * (w // 2)
            return f"CNN conv{c}→16 conv16→32 maxpool2 fc{fc}→{self.hidden}→{self.n_classes}"
        return f"MLP {int(np.prod(self.input_shape))}→{self.hidden}→{self.n_classes}"

    def build(self, torch: Any) -> Any:
        nn = torch.nn
        if self.is_cnn:
            c, h, w = self.input_shape
            return nn.Sequential(
                nn.Conv2d(c, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * (h // 2) * (w // 2), self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, self.n_classes),
            )
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(self.input_shape)), self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, self.n_classes),
        )


def default_student(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    epochs: int = 30,
    min_steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    hidden: int = 64,
    seed: int = 0,
) -> StudentTrainer:
    """A ``train_fn`` training Garrison's default student (see the module docstring), seeded.

    Soft cross-entropy on the targets, Adam with learning rate ``lr``, batches of ``batch_size``,
    ``epochs`` passes over the data but at least ``min_steps`` optimizer steps (a student trained on
    100 queries would otherwise see only a couple of steps), at most ``max(epochs·batches, min_steps)``.
    """
    torch = require_torch("model extraction")
    layout = _Student(tuple(int(d) for d in input_shape), n_classes, hidden)

    def train(x: np.ndarray, soft_y: np.ndarray) -> Any:
        torch.manual_seed(seed)
        net = layout.build(torch)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.ascontiguousarray(soft_y, dtype=np.float32))
        gen = torch.Generator().manual_seed(seed)
        per_epoch = max(1, math.ceil(len(xt) / batch_size))
        steps = max(epochs * per_epoch, min_steps)
        net.train()
        done = 0
        while done < steps:
            order = torch.randperm(len(xt), generator=gen)
            for start in range(0, len(xt), batch_size):
                idx = order[start : start + batch_size]
                opt.zero_grad()
                logp = torch.nn.functional.log_softmax(net(xt[idx]), dim=1)
                loss = -(yt[idx] * logp).sum(dim=1).mean()
                loss.backward()
                opt.step()
                done += 1
                if done >= steps:
                    break
        return net.eval()

    train.__name__ = layout.describe()
    return train


def _check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1:
            raise InputError(f"query budget {b!r} is not a positive whole number")
        out.append(int(b))
    if not out:
        raise InputError("no query budgets given", hint=f"for example {DEFAULT_BUDGETS}")
    return tuple(sorted(set(out)))


def _check_inputs(pool: np.ndarray, tx: np.ndarray, max_queries: int | None) -> None:
    if len(pool) == 0:
        raise InputError("the query pool is empty")
    if len(tx) == 0:
        raise InputError("the test set is empty")
    if pool.shape[1:] != tx.shape[1:]:
        raise InputError(f"query pool rows have shape {pool.shape[1:]}, test rows {tx.shape[1:]}")
    if max_queries is not None and (isinstance(max_queries, bool) or max_queries < 1):
        raise InputError(f"max_queries must be a positive whole number, not {max_queries!r}")


def _plan_budgets(
    wanted: tuple[int, ...], pool_size: int, max_queries: int | None, notes: list[str]
) -> list[tuple[int, int]]:
    """``(budget, queries)`` pairs to measure: above ``max_queries`` skipped, above the pool clipped."""
    planned: list[tuple[int, int]] = []
    for b in wanted:
        if max_queries is not None and b > max_queries:
            notes.append(f"budget {b:,} skipped: above max_queries {max_queries:,}")
            continue
        q = min(b, pool_size)
        if q < b:
            notes.append(f"budget {b:,} clipped to the query pool's {pool_size:,} rows")
        if planned and planned[-1][1] == q:
            continue
        planned.append((b, q))
    if not planned:
        raise InputError(
            f"no budget fits max_queries {max_queries:,}", hint="lower the budgets or raise max_queries"
        )
    return planned


def _student_labels(stolen: ModelAdapter, x: np.ndarray) -> np.ndarray:
    """The student's labels as the victim's class indices. A scikit-learn student trained on the indices
    may lack a class its training answers never showed, so its own indices are mapped back through
    ``classes_``.
    """
    idx = stolen.predict(x)
    if isinstance(stolen, SklearnModel):
        labels: np.ndarray = np.asarray(stolen.classes)[idx].astype(np.int64)
        return labels
    return idx


def _least_confident_first(
    stolen: ModelAdapter, pool: np.ndarray, order: np.ndarray, used: int
) -> np.ndarray:
    """``order`` with its unqueried tail sorted by the student's top-2 margin, smallest first (stable)."""
    rest = order[used:]
    if len(rest) == 0:
        return order
    p = stolen.probabilities(pool[rest])
    top2 = np.sort(p, axis=1)[:, -2:] if p.shape[1] > 1 else np.concatenate([np.zeros_like(p), p], 1)
    margin = top2[:, 1] - top2[:, 0]
    out: np.ndarray = np.concatenate([order[:used], rest[np.argsort(margin, kind="stable")]])
    return out


def run_extraction(
    victim: Any,
    query_pool: Any,
    test_x: Any,
    test_y: Any,
    *,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    student: StudentTrainer | None = None,
    output: str = "probabilities",
    max_queries: int | None = None,
    seed: int = 0,
    epochs: int = 30,
    min_steps: int = 300,
    batch_size: int = 64,
    sampling: str = "random",
) -> ExtractionReport:
    """Copy ``victim`` with each query budget and measure fidelity and accuracy on ``test_x, test_y``.

    ``victim`` is a torch module, a fitted scikit-learn classifier or a :class:`ModelAdapter`;
    ``query_pool`` unlabeled inputs in the victim's input shape (keep the test set out of it);
    ``test_y`` true labels as the victim writes them. ``output`` is what the victim shows the attacker
    (``probabilities``, ``topK``, ``label``); a victim that returns labels only is attacked with labels
    whatever is asked, and a note says so. ``max_queries`` caps the attacker's queries: budgets above it
    are skipped. ``epochs``, ``min_steps`` and ``batch_size`` shape the default student's training
    (ignored with ``student=``). ``sampling="uncertainty"`` makes the attack adaptive: after each
    budget, the rows the next budget adds are the pool rows the current student is least sure of
    (smallest gap between its two most probable classes), the first budget being random.
    """
    model = as_model(victim)
    k = parse_output(output)
    pool = to_numpy(query_pool)
    tx = to_numpy(test_x)
    _check_inputs(pool, tx, max_queries)
    wanted = _check_budgets(budgets)
    if sampling not in SAMPLINGS:
        raise InputError(f"unknown sampling {sampling!r}", hint=f"use one of {', '.join(SAMPLINGS)}")
    notes: list[str] = []

    # The assessor's own queries: the victim's labels on the test set (this also probes a torch module).
    victim_test = model.predict(tx)
    evaluation_queries = len(tx)
    ty = model.label_indices(test_y)
    if len(ty) != len(tx):
        raise InputError(f"{len(tx)} test inputs but {len(ty)} test labels")
    kind = model.output_kind
    n_classes = model.n_classes
    if kind is OutputKind.LABELS and k != 0:
        notes.append(f"{model.name} returns labels only: attacked with labels, not {output}")
        k = 0
    if k is not None and k >= n_classes:
        notes.append(f"{output} shows all {n_classes} classes: the same as full probabilities")
        k = None
    shown = "label" if k == 0 else ("probabilities" if k is None else f"top{k}")

    points_budgets = _plan_budgets(wanted, len(pool), max_queries, notes)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    counter = _CountingVictim(model, k, n_classes)
    train_fn = student or default_student(
        pool.shape[1:], n_classes, epochs=epochs, min_steps=min_steps, batch_size=batch_size, seed=seed
    )
    student_name = getattr(train_fn, "__name__", type(train_fn).__name__)

    targets = np.zeros((0, n_classes), np.float32)
    points: list[ExtractionPoint] = []
    for b, q in points_budgets:
        t0 = time.perf_counter()
        have = len(targets)
        if q > have:
            targets = np.concatenate([targets, counter.answer(pool[order[have:q]])])
        x_train = pool[order[:q]]
        stolen = as_model(train_fn(x_train, targets))
        pred = _student_labels(stolen, tx)
        if sampling == "uncertainty":
            order = _least_confident_first(stolen, pool, order, q)
        seconds = time.perf_counter() - t0
        points.append(
            ExtractionPoint(
                budget=b,
                queries=q,
                fidelity=float(np.mean(pred == victim_test)),
                accuracy=float(np.mean(pred == ty)),
                seconds=seconds,
            )
        )
    assert counter.rows == points[-1].queries, "query count drifted from the budget"
    return ExtractionReport(
        victim=model.name,
        victim_output_kind=kind.value,
        output=shown,
        soft_labels=k != 0,
        conversion=_conversion(kind, k),
        victim_accuracy=float(np.mean(victim_test == ty)),
        test_samples=len(tx),
        pool_size=len(pool),
        queries=counter.rows,
        evaluation_queries=evaluation_queries,
        max_queries=max_queries,
        student=student_name,
        seed=seed,
        sampling=sampling,
        points=tuple(points),
        notes=tuple(notes),
    )
