"""The model-extraction monitor: PRADA against synthetic attacks and natural traffic, volume, coverage,
enforcement, and bounded memory. W is checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from garrison.core.errors import ConfigError
from garrison.gateway.extraction import Alert, ExtractionConfig, ExtractionMonitor, prada_w, shapiro_wilk_w
from garrison.gateway.types import Denied

DIM = 64
CLASSES = 5
CENTRES = np.random.default_rng(1).uniform(-3, 3, (CLASSES, DIM))


def predict(x: np.ndarray) -> np.ndarray:
    """The 'model': the nearest centre of the Gaussian mixture the real data comes from."""
    return np.argmin(((x[:, None, :] - CENTRES[None]) ** 2).sum(-1), axis=1)


def natural(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, CLASSES, n)] + rng.standard_normal((n, DIM))


def jacobian_augmentation(n: int, seed: int, step: float = 0.1) -> np.ndarray:
    """Papernot et al.'s synthetic data: seeds, then each sample pushed by step * sign(surrogate gradient)."""
    rng = np.random.default_rng(seed)
    surrogate = rng.standard_normal((CLASSES, DIM))
    samples = list(natural(10, seed + 100))
    while len(samples) < n:
        grown = [
            x + step * np.sign(surrogate[predict(x[None])[0]] * rng.choice([-1, 1], DIM)) for x in samples
        ]
        samples += grown
    return np.array(samples[:n])


def finite_difference_probes(n: int, seed: int, eps: float = 0.01, coords: int = 16) -> np.ndarray:
    """Gradient estimation by finite differences: a point, the point moved by eps along some axes, a step."""
    rng = np.random.default_rng(seed)
    x = natural(1, seed + 300)[0]
    out = []
    while len(out) < n:
        out.append(x.copy())
        for i in rng.choice(DIM, coords, replace=False):
            probe = x.copy()
            probe[i] += eps
            out.append(probe)
        x = x + 0.3 * rng.standard_normal(DIM)
    return np.array(out[:n])


def replay(monitor: ExtractionMonitor, queries: np.ndarray, principal: str = "p") -> list[tuple[int, Alert]]:
    alerts = []
    for i, (x, label) in enumerate(zip(queries, predict(queries), strict=True)):
        alert = monitor.observe(principal, x, int(label))
        if alert is not None:
            alerts.append((i, alert))
    return alerts


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return natural(40_000, seed=99)


def monitor_with_grid(reference: np.ndarray, **config: object) -> ExtractionMonitor:
    monitor = ExtractionMonitor(ExtractionConfig.model_validate(config))
    monitor.fit_grid(reference)
    return monitor


# --- Shapiro-Wilk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 11, 20, 50, 99, 100, 101, 500, 1000, 4999, 5000])
@pytest.mark.parametrize("dist", ["normal", "exponential", "uniform", "bimodal"])
def test_w_matches_scipy(n: int, dist: str) -> None:
    rng = np.random.default_rng(n)
    sample = {
        "normal": lambda: rng.standard_normal(n),
        "exponential": lambda: rng.exponential(size=n),
        "uniform": lambda: rng.uniform(size=n),
        "bimodal": lambda: np.concatenate([rng.normal(0, 1, n // 2), rng.normal(8, 1, n - n // 2)]),
    }[dist]()
    assert shapiro_wilk_w(sample) == pytest.approx(scipy.stats.shapiro(sample).statistic, abs=1e-7)


def test_w_edge_cases() -> None:
    assert shapiro_wilk_w(np.ones(50)) == 1.0
    with pytest.raises(ValueError, match="3 to 5000"):
        shapiro_wilk_w(np.ones(2))
    with pytest.raises(ValueError, match="3 to 5000"):
        shapiro_wilk_w(np.arange(5001.0))
    assert prada_w(np.array([1.0, 2.0])) == 1.0


# --- PRADA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_natural_traffic_raises_no_alert(reference: np.ndarray, seed: int) -> None:
    monitor = monitor_with_grid(reference)
    assert replay(monitor, natural(1000, seed)) == []


@pytest.mark.parametrize("attack", [jacobian_augmentation, finite_difference_probes])
@pytest.mark.parametrize("seed", [0, 5])
def test_synthetic_attacks_raise_prada_alarm(attack: object, seed: int, reference: np.ndarray) -> None:
    monitor = monitor_with_grid(reference)
    alerts = replay(monitor, attack(600, seed=seed))  # type: ignore[operator]
    assert alerts, "no alert"
    first_at, first = alerts[0]
    assert first.kind == "prada"
    assert first.score < first.threshold == 0.90
    assert first_at < 300
    assert first.principal_id == "p"


def test_uniform_random_queries_raise_off_support_alarm(reference: np.ndarray) -> None:
    monitor = monitor_with_grid(reference)
    queries = np.random.default_rng(3).uniform(-6, 6, (400, DIM))
    alerts = replay(monitor, queries)
    assert alerts
    first_at, first = alerts[0]
    assert first.kind == "off_support"
    assert first.score > 0.25
    assert first_at < 200


def test_attacker_does_not_taint_other_principals(reference: np.ndarray) -> None:
    monitor = monitor_with_grid(reference)
    attack = finite_difference_probes(300, seed=7)
    honest = natural(300, seed=8)
    alerts = []
    for i in range(300):
        alerts += [
            a for a in (monitor.observe("mallory", attack[i], int(predict(attack[i : i + 1])[0])),) if a
        ]
        alerts += [a for a in (monitor.observe("alice", honest[i], int(predict(honest[i : i + 1])[0])),) if a]
    assert {a.principal_id for a in alerts} == {"mallory"}


def test_batch_observation_with_predicted_array() -> None:
    monitor = ExtractionMonitor(ExtractionConfig())
    attack = finite_difference_probes(400, seed=9)
    alerts = [monitor.observe("p", batch, predict(batch)) for batch in np.split(attack, 20)]
    assert any(a is not None and a.kind == "prada" for a in alerts)
    with pytest.raises(ValueError, match="predicted classes"):
        monitor.observe("p", attack[:3], np.array([0, 1]))


# --- volume, coverage -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_volume_alarm_in_a_sliding_window() -> None:
    clock = FakeClock()
    monitor = ExtractionMonitor(ExtractionConfig(max_queries_per_window=10, window_s=60), clock=clock)
    x = natural(30, seed=1)
    assert [monitor.observe("p", row) for row in x[:10]] == [None] * 10
    alert = monitor.observe("p", x[10])
    assert alert is not None
    assert (alert.kind, alert.score, alert.threshold) == ("volume", 11.0, 10.0)
    clock.now += 10_000  # penalty and windows long past
    assert monitor.observe("p", x[11]) is None


def test_coverage_alarm_when_the_grid_is_covered(reference: np.ndarray) -> None:
    monitor = monitor_with_grid(reference, coverage_max=0.05, off_support_max=None)
    queries = np.random.default_rng(4).uniform(-6, 6, (1000, DIM))
    alerts = replay(monitor, queries)
    assert alerts
    assert alerts[0][1].kind == "coverage"
    assert alerts[0][1].score > 0.05


def test_grid_needs_a_usable_reference() -> None:
    monitor = ExtractionMonitor(ExtractionConfig())
    with pytest.raises(ConfigError, match="reference sample"):
        monitor.fit_grid(np.ones((3, DIM)))
    with pytest.raises(ConfigError, match="reference sample"):
        monitor.fit_grid(np.full((100, DIM), np.nan))


# --- enforcement ------------------------------------------------------------------------------------


def alarm(monitor: ExtractionMonitor, principal: str = "p") -> Alert:
    x = natural(3, seed=2)
    for row in x:
        alert = monitor.observe(principal, row)
        if alert is not None:
            return alert
    raise AssertionError("no alert")


def test_block_refuses_until_the_penalty_ends() -> None:
    clock = FakeClock()
    config = ExtractionConfig(action="block", max_queries_per_window=1, penalty_s=100)
    monitor = ExtractionMonitor(config, clock=clock)
    monitor.gate("p")
    alarm(monitor)
    with pytest.raises(Denied) as info:
        monitor.gate("p")
    assert (info.value.status, info.value.reason) == (403, "extraction_suspected")
    assert dict(info.value.headers)["retry-after"] == "100"
    monitor.gate("someone-else")
    clock.now += 101
    monitor.gate("p")
    assert not monitor.penalized("p")


def test_throttle_spaces_queries() -> None:
    clock = FakeClock()
    config = ExtractionConfig(action="throttle", max_queries_per_window=1, throttle_per_s=0.5, penalty_s=100)
    monitor = ExtractionMonitor(config, clock=clock)
    alarm(monitor)
    monitor.gate("p")
    with pytest.raises(Denied) as info:
        monitor.gate("p")
    assert (info.value.status, info.value.reason) == (429, "extraction_throttled")
    clock.now += 2.0
    monitor.gate("p")


def test_flag_never_refuses_and_alerts_once_per_penalty() -> None:
    clock = FakeClock()
    monitor = ExtractionMonitor(ExtractionConfig(max_queries_per_window=1, penalty_s=50), clock=clock)
    alarm(monitor)
    monitor.gate("p")
    assert monitor.penalized("p")
    assert [monitor.observe("p", row) for row in natural(5, seed=3)] == [None] * 5  # silent, extended
    clock.now += 40
    assert monitor.observe("p", natural(1, seed=4)[0]) is None  # still within the extended penalty
    clock.now += 10_000
    monitor.observe("p", natural(1, seed=5)[0])
    assert monitor.observe("p", natural(1, seed=6)[0]) is not None


# --- bounds -----------------------------------------------------------------------------------------


def test_principals_are_forgotten_least_recently_seen_first() -> None:
    monitor = ExtractionMonitor(ExtractionConfig(max_principals=3))
    row = natural(1, seed=0)[0]
    for name in ["a", "b", "c", "a", "d"]:
        monitor.observe(name, row)
    assert len(monitor) == 3
    assert list(monitor._principals) == ["c", "a", "d"]
    monitor.forget("a")
    assert len(monitor) == 2


def test_memory_per_principal_is_bounded() -> None:
    monitor = ExtractionMonitor(ExtractionConfig(max_samples=32, max_distances=100, min_queries=50))
    replay(monitor, natural(600, seed=0))
    state = monitor._principals["p"]
    assert state.samples.shape == (32, DIM)
    assert state.distances.shape == (100,)
    assert state.distance_count > 100


def test_wide_inputs_are_projected_and_width_change_resets() -> None:
    monitor = ExtractionMonitor(ExtractionConfig(project_dims=16))
    monitor.observe("p", np.zeros(1000))
    assert monitor._principals["p"].dim == 16
    monitor.observe("p", np.zeros(8))
    assert monitor._principals["p"].dim == 8
    assert monitor._principals["p"].queries == 1


def test_non_finite_queries_still_count() -> None:
    monitor = ExtractionMonitor(ExtractionConfig(max_queries_per_window=1))
    assert monitor.observe("p", np.array([np.nan, 1.0])) is None
    alert = monitor.observe("p", np.array([np.inf, 1.0]))
    assert alert is not None
    assert alert.kind == "volume"


def test_grid_width_mismatch_is_a_config_error(reference: np.ndarray) -> None:
    monitor = monitor_with_grid(reference)
    with pytest.raises(ConfigError, match="one extraction monitor per model"):
        monitor.observe("p", np.zeros(DIM + 1))


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="min_queries"):
        ExtractionConfig(min_queries=600, max_distances=500)
    with pytest.raises(ValueError, match="cells"):
        ExtractionConfig(grid_dims=16, grid_bins=16)
    with pytest.raises(ValueError, match="extra"):
        ExtractionConfig.model_validate({"delta": 0.9, "deltaa": 1})
