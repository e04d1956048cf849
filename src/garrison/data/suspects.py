"""Duplicates with conflicting labels and outliers: two more footprints of poisoned training data.

* :func:`conflicting_duplicates`: rows whose features are identical, or nearly so, but whose labels
  differ. A copy of a real sample with another label is the cheapest label-flipping attack, and an
  honest dataset rarely has one (when it does, one of the labels is wrong anyway). Features are
  standardised per column; rows closer than ``radius`` times the median nearest-neighbour distance
  (default 0.2; on digits the closest distinct pair is at 0.27) are near-duplicates, grouped
  transitively, and a group with more than one label is reported.
* :func:`outliers`: rows far from every other row. Each row's score is its mean distance to its ``k``
  nearest neighbours (standardised features) over the median of that distance in the dataset; a
  row at ``threshold`` (default 3) or more is flagged. Injected out-of-distribution rows and
  corrupted rows stand out this way; on scikit-learn's digits 32 of the 1,797 clean rows score 2 or
  more and 14 score 3 or more, so the list is for review, not for automatic removal. (Rows that
  look like another class are label issues, found by confident learning, not outliers.)

Both hold the feature matrix in memory and use scikit-learn's nearest-neighbour search (a tree for
low-dimensional data, brute force otherwise); exact duplicates are found by hashing, in linear time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InputError, UsageError

__all__ = ["DuplicateGroup", "Outlier", "conflicting_duplicates", "outliers"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateGroup:
    """Rows with the same, or nearly the same, features and more than one label."""

    rows: tuple[int, ...]
    """Row indices, ascending."""
    labels: tuple[int, ...]
    """The label of each row, in the same order."""
    exact: bool
    """True when every row's features are identical."""
    distance: float
    """Largest distance between linked rows (standardised features; 0 for exact duplicates)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outlier:
    """A row far from the other rows of its class."""

    row: int
    """Row index."""
    label: int
    """Its class."""
    score: float
    """Mean distance to its ``k`` nearest neighbours over the median of that distance in the data."""


def _standardise(features: Any) -> npt.NDArray[np.float64]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] == 0:
        raise InputError(f"features must be an (N, D) array with at least two rows, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("features contain NaN or infinite values")
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return np.asarray((x - x.mean(axis=0)) / scale)


def _labels(labels: Any, rows: int) -> npt.NDArray[np.int64]:
    y = np.asarray(labels)
    if y.shape != (rows,) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be ({rows},) integers, got {y.shape} {y.dtype}")
    return y.astype(np.int64)


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[i] != root:
            self.parent[i], i = root, int(self.parent[i])
        return root

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def conflicting_duplicates(
    features: Any, labels: Any, *, radius: float = 0.2, near: bool = True
) -> list[DuplicateGroup]:
    """Groups of identical or near-identical rows that carry more than one label, largest first."""
    from sklearn.neighbors import NearestNeighbors  # type: ignore[import-untyped]

    if radius < 0:
        raise UsageError(f"radius must not be negative, got {radius}")
    x = _standardise(features)
    y = _labels(labels, x.shape[0])
    union = _Union(x.shape[0])
    _, first = np.unique(
        np.ascontiguousarray(x).view(np.void(x.dtype.itemsize * x.shape[1])), return_inverse=True
    )
    first = first.ravel()
    order = np.argsort(first, kind="stable")
    same = np.flatnonzero(first[order][1:] == first[order][:-1])
    for i in same.tolist():
        union.join(int(order[i]), int(order[i + 1]))
    pairs: list[tuple[int, float]] = []
    if near and radius > 0:
        search = NearestNeighbors(n_neighbors=2).fit(x)
        dist, _ = search.kneighbors(x)
        typical = float(np.median(dist[:, 1]))
        if typical > 0:
            dists, neighbours = search.radius_neighbors(x, radius=radius * typical)
            for i in range(x.shape[0]):
                for d, j in zip(dists[i].tolist(), neighbours[i].tolist(), strict=True):
                    if j != i:
                        union.join(i, j)
                        pairs.append((i, d))
    longest: dict[int, float] = {}
    for i, d in pairs:
        root = union.find(i)
        longest[root] = max(longest.get(root, 0.0), d)
    groups: dict[int, list[int]] = {}
    for i in range(x.shape[0]):
        groups.setdefault(union.find(i), []).append(i)
    found = []
    for root, rows in groups.items():
        if len(rows) < 2 or len(set(y[rows].tolist())) < 2:
            continue
        exact = bool(np.all(x[rows] == x[rows[0]]))
        found.append(
            DuplicateGroup(
                rows=tuple(rows),
                labels=tuple(int(v) for v in y[rows]),
                exact=exact,
                distance=0.0 if exact else longest.get(root, 0.0),
            )
        )
    found.sort(key=lambda g: (-len(g.rows), g.rows[0]))
    return found


def outliers(features: Any, labels: Any, *, k: int = 10, threshold: float = 3.0) -> list[Outlier]:
    """Rows far from every other row, most outlying first."""
    from sklearn.neighbors import NearestNeighbors

    if k < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    if threshold <= 1:
        raise UsageError(f"threshold must be above 1, got {threshold}")
    x = _standardise(features)
    y = _labels(labels, x.shape[0])
    k = min(k, x.shape[0] - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    mean = dist[:, 1:].mean(axis=1)
    median = float(np.median(mean))
    if median <= 0:
        return []
    score = mean / median
    found = [
        Outlier(row=j, label=int(y[j]), score=float(score[j]))
        for j in np.flatnonzero(score >= threshold).tolist()
    ]
    found.sort(key=lambda o: (-o.score, o.row))
    return found
