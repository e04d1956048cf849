"""Model-extraction monitor: watches each principal's queries to an ML route for the patterns of model
stealing, raises an alert, and throttles or blocks the principal if so configured.

Three signals:

- **PRADA** (Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model Stealing Attacks",
  EuroS&P 2019). For each query, the minimum L2 distance to the principal's earlier queries of the same
  predicted class (its "growing set") joins a distance set; natural queries give roughly normally
  distributed distances, synthetic ones (perturbations around seeds, Jacobian-based augmentation) do
  not. The alarm is the Shapiro-Wilk W statistic of the distance set (3-sigma outliers removed) below
  ``delta`` (W from :mod:`garrison.gateway.normality`, in numpy: no scipy at run time). Finite-difference
  gradient probing and Jacobian-based augmentation trip it within about 110 queries.
- **Volume**: more queries in a sliding window than allowed.
- **Off-support** and **coverage**, on a coarse grid over the feature space: the fraction of recent
  queries in cells the reference data never reaches, and the fraction of cells touched. The grid
  is fitted on a reference sample of real inputs (:meth:`ExtractionMonitor.fit_grid`): random
  projections to a few dimensions, each cut at the reference's quantiles. Real traffic stays in the
  cells real data occupies; an attacker exploring the input space covers many more.

Memory is bounded: each principal keeps at most ``max_samples`` projected queries and
``max_distances`` distances, at most ``max_principals`` principals are tracked (least recently seen
forgotten first). Use one monitor per model: a principal's state is reset if the feature width changes.
Not thread-safe; the gateway calls it from its event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.core.errors import ConfigError
from garrison.gateway.normality import shapiro_wilk_w
from garrison.gateway.types import Denied

__all__ = ["Alert", "AlertKind", "ExtractionConfig", "ExtractionMonitor", "prada_w", "shapiro_wilk_w"]

AlertKind = Literal["prada", "volume", "coverage", "off_support"]


class ExtractionConfig(BaseModel):
    """How the extraction monitor of one ML route decides and what the gateway does about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["flag", "throttle", "block"] = Field(
        default="flag", description="After an alert: only record it, slow the principal down, or refuse it."
    )
    delta: float = Field(
        default=0.90,
        gt=0.0,
        lt=1.0,
        description="PRADA alarm when the Shapiro-Wilk W of distances is below this.",
    )
    min_queries: int = Field(default=100, ge=20, description="Distances needed before PRADA tests them.")
    test_every: int = Field(default=8, ge=1, description="Run the PRADA test every this many queries.")
    max_distances: int = Field(
        default=1000, ge=20, le=5000, description="Most recent distances tested (Royston's W holds to 5,000)."
    )
    max_samples: int = Field(default=256, ge=8, description="Most queries kept per principal (growing set).")
    max_principals: int = Field(
        default=4096,
        ge=1,
        description="Most principals tracked at once (each up to about max_samples x width x 4 bytes, "
        "plus 9 bytes per kept distance and one per grid cell).",
    )
    project_dims: int | None = Field(
        default=128, ge=2, description="Wider feature vectors are randomly projected to this many dimensions."
    )
    window_s: float = Field(default=60.0, gt=0.0, description="Length of the volume window, in seconds.")
    max_queries_per_window: int | None = Field(default=None, ge=1, description="Volume alarm; null: off.")
    coverage_max: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Coverage alarm: fraction of grid cells touched; null: off."
    )
    off_support_max: float | None = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="Alarm when more than this fraction of recent queries fall in grid cells the reference "
        "sample never reached (needs fit_grid); null: off.",
    )
    grid_dims: int = Field(default=6, ge=1, le=16, description="Projected dimensions of the coverage grid.")
    grid_bins: int = Field(
        default=4, ge=2, le=16, description="Bins per grid dimension (reference quantiles)."
    )
    penalty_s: float = Field(default=600.0, gt=0.0, description="How long throttling or blocking lasts.")
    throttle_per_s: float = Field(
        default=1.0, gt=0.0, description="Queries per second a throttled principal gets."
    )

    @model_validator(mode="after")
    def _check(self) -> ExtractionConfig:
        if self.min_queries > self.max_distances:
            raise ValueError("min_queries cannot exceed max_distances")
        if self.grid_bins**self.grid_dims > 2**20:
            raise ValueError("grid_bins ** grid_dims must be at most 2**20 cells")
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One extraction alarm for one principal."""

    kind: AlertKind
    """Which signal fired."""
    score: float
    """W for ``prada``, queries in the window for ``volume``, the fraction of grid cells touched for
    ``coverage``, the fraction of recent queries outside the reference's cells for ``off_support``."""
    threshold: float
    """The configured limit it crossed (W below it, the others above it)."""
    principal_id: str
    """Who."""
    queries: int
    """Queries observed from this principal so far (since it was last forgotten)."""


# --- per-principal state ----------------------------------------------------------------------------


class _ClassGrowth:
    """Running mean and spread of the distances that grew one class's set (Welford), and its threshold."""

    __slots__ = ("count", "m2", "mean", "threshold")

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.threshold = 0.0

    def add(self, d: float) -> None:
        self.count += 1
        delta = d - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (d - self.mean)
        std = math.sqrt(self.m2 / self.count)
        self.threshold = max(self.threshold, self.mean - std)


class _Principal:
    __slots__ = (
        "cells",
        "classes",
        "dim",
        "distance_count",
        "distances",
        "labels",
        "max_samples",
        "next_allowed",
        "off_count",
        "off_recent",
        "penalty_until",
        "queries",
        "samples",
        "size",
        "slot",
        "win_count",
        "win_prev",
        "win_start",
    )

    def __init__(self, dim: int, max_samples: int, max_distances: int, now: float) -> None:
        self.dim = dim
        self.max_samples = max_samples
        first = min(16, max_samples)  # grows by doubling: most principals send few queries
        self.samples = np.empty((first, dim), dtype=np.float32)
        self.labels = np.empty(first, dtype=np.int64)
        self.size = 0
        self.slot = 0
        self.classes: dict[int, _ClassGrowth] = {}
        self.distances = np.empty(max_distances, dtype=np.float64)  # ring buffer, order does not matter
        self.distance_count = 0
        self.cells = np.zeros(0, dtype=bool)  # grid cells touched, sized when the grid is used
        self.off_recent: deque[bool] = deque(maxlen=max_distances)
        self.off_count = 0
        self.queries = 0
        self.win_start = now
        self.win_count = 0
        self.win_prev = 0
        self.penalty_until = -math.inf
        self.next_allowed = -math.inf


class ExtractionMonitor:
    """Per-principal extraction monitor of one ML route (see the module docstring)."""

    def __init__(
        self, config: ExtractionConfig, *, clock: Callable[[], float] = time.monotonic, seed: int = 0
    ):
        """``clock`` returns seconds (monotonic); ``seed`` fixes the random projections."""
        self.config = config
        self._clock = clock
        self._seed = seed
        self._principals: OrderedDict[str, _Principal] = OrderedDict()
        self._projections: dict[int, np.ndarray] = {}
        self._grid: tuple[np.ndarray, np.ndarray] | None = None  # projection, per-dim inner edges
        self._support = np.zeros(0, dtype=bool)  # cells the reference sample reaches
        self._place = np.zeros(0, dtype=np.int64)  # place value of each grid dimension in a cell number

    # -- configuration -------------------------------------------------------------------------------

    def fit_grid(self, reference: np.ndarray) -> None:
        """Fit the coverage grid on a sample of real inputs (rows), e.g. part of the training set.

        The reference also marks the cells real data reaches (for ``off_support_max``): give it enough
        rows to fill them, about ten times the number of cells.
        """
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[0] < self.config.grid_bins * 4 or not np.isfinite(ref).all():
            raise ConfigError(
                "the coverage grid needs a finite 2-D reference sample of at least "
                f"{self.config.grid_bins * 4} rows, got shape {ref.shape}"
            )
        rng = np.random.default_rng(self._seed + 1)
        proj = rng.standard_normal((ref.shape[1], self.config.grid_dims))
        z = ref @ proj
        qs = np.linspace(0, 1, self.config.grid_bins + 1)[1:-1]
        edges = np.quantile(z, qs, axis=0).T  # (grid_dims, bins - 1)
        self._grid = (proj, np.ascontiguousarray(edges))
        self._support = np.zeros(self.config.grid_bins**self.config.grid_dims, dtype=bool)
        self._place = self.config.grid_bins ** np.arange(self.config.grid_dims - 1, -1, -1, dtype=np.int64)
        self._support[self._cells(ref)] = True

    # -- enforcement ---------------------------------------------------------------------------------

    def gate(self, principal_id: str) -> None:
        """Before a query: refuse a blocked principal (403) or a throttled one over its rate (429)."""
        state = self._principals.get(principal_id)
        if state is None or self.config.action == "flag":
            return
        now = self._clock()
        if now >= state.penalty_until:
            return
        if self.config.action == "block":
            retry = math.ceil(state.penalty_until - now)
            raise Denied(403, "extraction_suspected", headers=(("retry-after", str(retry)),))
        if now < state.next_allowed:
            retry = max(1, math.ceil(state.next_allowed - now))
            raise Denied(429, "extraction_throttled", headers=(("retry-after", str(retry)),))
        state.next_allowed = now + 1.0 / self.config.throttle_per_s

    def penalized(self, principal_id: str) -> bool:
        """Whether an alert's penalty is still running for this principal."""
        state = self._principals.get(principal_id)
        return state is not None and self._clock() < state.penalty_until

    def forget(self, principal_id: str) -> None:
        """Drop everything known about a principal (an operator cleared it)."""
        self._principals.pop(principal_id, None)

    def __len__(self) -> int:
        return len(self._principals)

    # -- observation ---------------------------------------------------------------------------------

    def observe(
        self, principal_id: str, x: np.ndarray, predicted: int | np.ndarray | None = None
    ) -> Alert | None:
        """Record one query (a row) or a batch (rows) and its predicted class(es).

        Returns an alert when a signal fires and no earlier alert's penalty is running; while it runs,
        further firing extends the penalty silently.
        """
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows[np.newaxis]
        rows = rows.reshape(rows.shape[0], -1)
        if rows.shape[0] == 0:
            return None
        if not np.isfinite(rows).all():  # counted all the same: NaN must not be a way around the monitor
            rows = np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
        labels = self._labels(predicted, rows.shape[0])
        projected = self._project(rows)
        now = self._clock()
        state = self._state(principal_id, projected.shape[1], now)
        fired = self._check_volume(principal_id, state, rows.shape[0], now)
        test_every = self.config.test_every
        for row, label in zip(projected, labels, strict=True):
            state.queries += 1
            self._grow(state, row, int(label))
            if fired is None and state.queries % test_every == 0:
                fired = self._check_prada(principal_id, state)
        if self._grid is not None:
            self._cover(state, rows)
            if fired is None:
                fired = self._check_coverage(principal_id, state)
        if fired is None:
            return None
        silent = now < state.penalty_until
        state.penalty_until = now + self.config.penalty_s
        return None if silent else fired

    def _labels(self, predicted: int | np.ndarray | None, n: int) -> np.ndarray:
        if predicted is None:
            return np.full(n, -1, dtype=np.int64)
        labels = np.asarray(predicted, dtype=np.int64).reshape(-1)
        if labels.shape[0] == 1 and n > 1:
            return np.repeat(labels, n)
        if labels.shape[0] != n:
            raise ValueError(f"{labels.shape[0]} predicted classes for {n} queries")
        return labels

    def _project(self, rows: np.ndarray) -> np.ndarray:
        dims = self.config.project_dims
        width = rows.shape[1]
        if dims is None or width <= dims:
            return rows.astype(np.float32)
        proj = self._projections.get(width)
        if proj is None:
            rng = np.random.default_rng(self._seed)
            proj = (rng.standard_normal((width, dims)) / math.sqrt(dims)).astype(np.float32)
            self._projections[width] = proj
        projected: np.ndarray = rows.astype(np.float32) @ proj
        return projected

    def _state(self, principal_id: str, dim: int, now: float) -> _Principal:
        state = self._principals.get(principal_id)
        if state is None or state.dim != dim:
            state = _Principal(dim, self.config.max_samples, self.config.max_distances, now)
            self._principals[principal_id] = state
            while len(self._principals) > self.config.max_principals:
                self._principals.popitem(last=False)
        self._principals.move_to_end(principal_id)
        return state

    def _grow(self, state: _Principal, row: np.ndarray, label: int) -> None:
        """PRADA's step: the distance to the class's growing set, which the query may join."""
        growth = state.classes.get(label)
        if growth is None:
            growth = state.classes[label] = _ClassGrowth()
            self._keep(state, row, label)
            return
        size = state.size
        diff = state.samples[:size] - row
        d2 = np.einsum("ij,ij->i", diff, diff)
        d2[state.labels[:size] != label] = np.inf
        nearest = float(d2.min())
        if nearest == math.inf:  # this class's samples were all overwritten
            self._keep(state, row, label)
            return
        d = math.sqrt(nearest)
        state.distances[state.distance_count % state.distances.shape[0]] = d
        state.distance_count += 1
        if d > growth.threshold:
            self._keep(state, row, label)
            growth.add(d)

    def _keep(self, state: _Principal, row: np.ndarray, label: int) -> None:
        capacity = state.samples.shape[0]
        if state.size == capacity and capacity < state.max_samples:
            grown = min(2 * capacity, state.max_samples)
            extra = grown - capacity
            state.samples = np.concatenate([state.samples, np.empty((extra, state.dim), np.float32)])
            state.labels = np.concatenate([state.labels, np.empty(extra, np.int64)])
            state.slot = capacity
            capacity = grown
        state.samples[state.slot] = row
        state.labels[state.slot] = label
        state.slot = (state.slot + 1) % capacity
        state.size = min(state.size + 1, capacity)

    def _check_volume(self, principal_id: str, state: _Principal, batch: int, now: float) -> Alert | None:
        cfg = self.config
        if cfg.max_queries_per_window is None:
            return None
        elapsed = now - state.win_start
        if elapsed >= cfg.window_s:  # two fixed windows, the older one weighted by its overlap
            periods = int(elapsed // cfg.window_s)
            state.win_prev = state.win_count if periods == 1 else 0
            state.win_count = 0
            state.win_start += periods * cfg.window_s
            elapsed = now - state.win_start
        state.win_count += batch
        rate = state.win_prev * (1.0 - elapsed / cfg.window_s) + state.win_count
        if rate <= cfg.max_queries_per_window:
            return None
        return Alert(
            kind="volume",
            score=rate,
            threshold=float(cfg.max_queries_per_window),
            principal_id=principal_id,
            queries=state.queries + batch,
        )

    def _check_prada(self, principal_id: str, state: _Principal) -> Alert | None:
        cfg = self.config
        if state.distance_count < cfg.min_queries:
            return None
        w = prada_w(state.distances[: state.distance_count])
        if w >= cfg.delta:
            return None
        return Alert(
            kind="prada", score=w, threshold=cfg.delta, principal_id=principal_id, queries=state.queries
        )

    def _cells(self, rows: np.ndarray) -> np.ndarray:
        assert self._grid is not None
        proj, edges = self._grid
        z = rows @ proj  # (n, grid_dims)
        bins = (z[:, :, np.newaxis] > edges[np.newaxis]).sum(axis=2)  # bin of each projected value
        cells: np.ndarray = bins @ self._place
        return cells

    def _cover(self, state: _Principal, rows: np.ndarray) -> None:
        assert self._grid is not None
        if rows.shape[1] != self._grid[0].shape[0]:
            raise ConfigError(
                f"the coverage grid was fitted on {self._grid[0].shape[0]} features, "
                f"but a query has {rows.shape[1]}; use one extraction monitor per model"
            )
        cells = self._cells(rows)
        if state.cells.shape[0] != self._support.shape[0]:
            state.cells = np.zeros(self._support.shape[0], dtype=bool)
        state.cells[cells] = True
        recent = state.off_recent
        for off in (~self._support[cells]).tolist():
            if len(recent) == recent.maxlen:
                state.off_count -= recent[0]
            recent.append(off)
            state.off_count += off

    def _check_coverage(self, principal_id: str, state: _Principal) -> Alert | None:
        cfg = self.config
        if state.queries < cfg.min_queries:
            return None
        if cfg.off_support_max is not None:
            off = state.off_count / len(state.off_recent)
            if off > cfg.off_support_max:
                return Alert(
                    kind="off_support",
                    score=off,
                    threshold=cfg.off_support_max,
                    principal_id=principal_id,
                    queries=state.queries,
                )
        if cfg.coverage_max is not None:
            covered = float(state.cells.mean())
            if covered > cfg.coverage_max:
                return Alert(
                    kind="coverage",
                    score=covered,
                    threshold=cfg.coverage_max,
                    principal_id=principal_id,
                    queries=state.queries,
                )
        return None


def prada_w(distances: np.ndarray) -> float:
    """PRADA's test statistic: W of the distances within three standard deviations of their mean."""
    d = np.asarray(distances, dtype=np.float64)
    mean, std = float(d.mean()), float(d.std())
    kept = d[np.abs(d - mean) <= 3.0 * std] if std > 0 else d
    if kept.shape[0] < 3:
        return 1.0
    return shapiro_wilk_w(kept)
