"""Run-time input detectors: calibrated to 1% false positives on clean digits, they flag PGD
examples (squeezing the small perturbations, input-space distance the large ones) and
out-of-distribution inputs; an input-space detector round-trips through .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from garrison.assess import run_attack
from garrison.assess.input_detectors import (
    AnyOf,
    MahalanobisDetector,
    SqueezeDetector,
    calibrate,
    detection_rate,
)
from garrison.core.errors import InputError, UsageError


def _pgd(mlp: Any, digits: Any, eps: float) -> np.ndarray:
    """PGD-10 examples that fooled the MLP."""
    _, _, x_test, y_test = digits
    _, outcome = run_attack(mlp, x_test, y_test, "pgd-10", eps)
    return np.asarray(outcome.x_adv[outcome.success])


@pytest.fixture(scope="module")
def adversarial(mlp: Any, digits: Any) -> dict[float, np.ndarray]:
    return {eps: _pgd(mlp, digits, eps) for eps in (0.1, 0.3)}


def _split(digits: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train, _, _ = digits
    return x_train[:600], y_train[:600], x_train[600:1200]  # fit, labels, held-out clean


def test_calibration_flags_the_requested_share_of_clean_inputs() -> None:
    scores = np.arange(1000, dtype=np.float64)
    threshold = calibrate(scores, 0.01)
    assert np.mean(scores > threshold) == pytest.approx(0.01, abs=0.002)
    with pytest.raises(UsageError):
        calibrate(scores, 0.0)
    with pytest.raises(InputError):
        calibrate(scores[:5], 0.01)


def test_squeezing_catches_small_perturbations_and_input_distance_large_ones(
    mlp: Any, digits: Any, adversarial: dict[float, np.ndarray]
) -> None:
    x_fit, y_fit, x_clean = _split(digits)
    squeeze = SqueezeDetector.for_model(mlp, bits=2).calibrate(x_clean[:300], fpr=0.01)
    distance = MahalanobisDetector.fit(x_fit, y_fit, space="input").calibrate(x_clean[:300], fpr=0.01)
    for detector in (squeeze, distance):
        assert detection_rate(detector, x_clean[300:]) <= 0.04  # about 1% on clean inputs it never saw
    assert min(len(a) for a in adversarial.values()) >= 50
    assert detection_rate(squeeze, adversarial[0.1]) >= 0.5
    assert detection_rate(distance, adversarial[0.3]) >= 0.9
    both = AnyOf(
        detectors=(
            SqueezeDetector.for_model(mlp, bits=2),
            MahalanobisDetector.fit(x_fit, y_fit, space="input"),
        )
    ).calibrate(x_clean[:300], fpr=0.02)
    assert detection_rate(both, x_clean[300:]) <= 0.05
    assert detection_rate(both, adversarial[0.1]) >= 0.5
    assert detection_rate(both, adversarial[0.3]) >= 0.9


def test_penultimate_and_logit_features_are_available(mlp: Any, digits: Any) -> None:
    x_fit, y_fit, x_clean = _split(digits)
    for space in ("penultimate", "logits"):
        detector = MahalanobisDetector.fit(x_fit, y_fit, model=mlp, space=space).calibrate(x_clean, fpr=0.05)
        assert detector.means.shape[0] == 10
        assert 0.02 <= detection_rate(detector, x_clean) <= 0.08
    with pytest.raises(UsageError, match="needs the model"):
        MahalanobisDetector.fit(x_fit, y_fit, space="penultimate")


def test_input_space_detector_flags_out_of_distribution_rows_and_round_trips(
    digits: Any, tmp_path: Path
) -> None:
    x_fit, y_fit, x_clean = _split(digits)
    detector = MahalanobisDetector.fit(x_fit, y_fit, space="input").calibrate(x_clean[:300], fpr=0.01)
    noise = np.random.default_rng(0).uniform(0, 1, size=(200, 64)).astype(np.float32)
    assert detection_rate(detector, noise) >= 0.95
    path = tmp_path / "ood.npz"
    detector.save(path)
    loaded = MahalanobisDetector.load(path)
    np.testing.assert_allclose(loaded.score(x_clean[300:]), detector.score(x_clean[300:]))
    assert loaded.threshold == detector.threshold
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a Garrison input detector"):
        MahalanobisDetector.load(tmp_path / "bad.npz")


def test_detectors_fit_the_gateway_protocol(digits: Any) -> None:
    from garrison.gateway.ml_features import InputDetector, run_detector

    x_fit, y_fit, x_clean = _split(digits)
    detector: InputDetector = MahalanobisDetector.fit(x_fit, y_fit, space="input").calibrate(x_clean)
    noise = np.full((3, 64), 5.0)
    verdict = run_detector(detector, noise)
    assert verdict is not None
    assert verdict.rows == (0, 1, 2)
    assert run_detector(detector, x_fit[:1].astype(np.float64)) is None
