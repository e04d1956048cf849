"""Evasion attacks on tiny models: strength ordering, budgets respected, black-box rules enforced."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from garrison.assess import (
    APGD,
    FGSM,
    PGD,
    CarliniWagnerL2,
    GradientUnavailableError,
    HopSkipJump,
    SquareAttack,
    attack_from_name,
    run_attack,
    run_evasion,
)
from garrison.assess.evasion import infer_valid_range
from garrison.assess.evasion_pgd import apgd_checkpoints
from garrison.core.errors import ConfigError

EPSILONS = (0.02, 0.05, 0.1, 0.2)


def predictions(model: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(1).numpy()


def test_robust_accuracy_falls_with_epsilon_and_pgd_beats_fgsm(mlp: Any, digits: Any) -> None:
    x, y = digits[2], digits[3]
    report = run_evasion(mlp, x, y, attacks=["fgsm", "pgd-10", "apgd-ce"], epsilons=EPSILONS)
    for attack in ("fgsm", "pgd-10", "apgd-ce"):
        curve = report.curve(attack)
        assert [e for e, _ in curve] == list(EPSILONS)
        accs = [a for _, a in curve]
        assert accs == sorted(accs, reverse=True), (attack, accs)
        assert accs[0] <= report.results[0].clean_accuracy
        assert accs[-1] < accs[0]
    for eps in EPSILONS:
        assert report.robust_accuracy("pgd-10", eps) <= report.robust_accuracy("fgsm", eps)
        assert report.robust_accuracy("apgd-ce", eps) <= report.robust_accuracy("fgsm", eps)
    # at ε = 0.2 an undefended MLP on digits is almost completely broken
    assert report.robust_accuracy("pgd-10", 0.2) < 0.1
    assert report.model.n_classes == 10
    assert report.model.input_shape == (64,)
    assert report.model.valid_range == (0.0, 1.0)
    assert report.model.valid_range_inferred
    assert any("inferred from the data" in n for n in report.notes)


@pytest.mark.parametrize(
    ("spec", "norm", "eps"),
    [
        (FGSM(), "linf", 0.1),
        (PGD(steps=10, restarts=2), "linf", 0.1),
        (APGD(loss="dlr", steps=20), "linf", 0.05),
        (PGD(norm="l2", steps=10), "l2", 1.0),
        (APGD(norm="l2", steps=20), "l2", 1.0),
    ],
)
def test_adversarials_stay_in_the_ball_and_the_range(
    mlp: Any, digits: Any, spec: Any, norm: str, eps: float
) -> None:
    x, y = digits[2], digits[3]
    result, outcome = run_attack(mlp, x, y, spec, eps)
    diff = (outcome.x_adv - x).reshape(len(x), -1)
    size = np.abs(diff).max(1) if norm == "linf" else np.linalg.norm(diff, axis=1)
    assert size.max() <= eps * (1 + 1e-5) + 1e-6
    assert outcome.x_adv.min() >= 0.0
    assert outcome.x_adv.max() <= 1.0
    # success flags agree with the model's own verdict on the adversarials
    wrong = predictions(mlp, outcome.x_adv) != y
    np.testing.assert_array_equal(outcome.success, wrong & outcome.clean_correct)
    assert result.success_rate > 0
    assert result.robust_accuracy == pytest.approx((outcome.clean_correct & ~outcome.success).mean())
    assert result.queries_per_sample > 0
    assert result.samples == len(x)
    assert not np.any(size[~outcome.success] > 0), "failed samples keep the clean input"


def test_restarts_never_weaken_pgd(mlp: Any, digits: Any) -> None:
    x, y = digits[2], digits[3]
    one, _ = run_attack(mlp, x, y, PGD(steps=5, restarts=1), 0.05)
    three, _ = run_attack(mlp, x, y, PGD(steps=5, restarts=3), 0.05)
    assert three.robust_accuracy <= one.robust_accuracy


def test_carlini_wagner_finds_smaller_l2_than_pgd_l2(mlp: Any, digits: Any) -> None:
    x, y = digits[2][:60], digits[3][:60]
    pgd, _ = run_attack(mlp, x, y, PGD(norm="l2", steps=20), 2.0)
    cw, outcome = run_attack(mlp, x, y, CarliniWagnerL2())
    assert cw.epsilon is None
    assert cw.norm == "l2"
    assert pgd.success_rate > 0.9
    assert cw.success_rate >= pgd.success_rate
    assert cw.median_perturbation is not None
    assert pgd.median_perturbation is not None
    assert cw.median_perturbation < pgd.median_perturbation
    assert outcome.x_adv.min() >= 0.0
    assert outcome.x_adv.max() <= 1.0


def test_softmax_output_still_attackable_and_noted(mlp: Any, digits: Any) -> None:
    x, y = digits[2], digits[3]
    probs = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1))
    report = run_evasion(probs, torch.as_tensor(x), torch.as_tensor(y), attacks=["pgd-10"], epsilons=[0.1])
    plain = run_evasion(mlp, x, y, attacks=["pgd-10"], epsilons=[0.1])
    assert report.model.output_kind == "probabilities"
    assert any("outputs probabilities" in n for n in report.notes)
    assert report.results[0].robust_accuracy <= plain.results[0].robust_accuracy + 0.02


def test_logistic_regression_attacked_through_its_gradient(logreg: Any, digits: Any) -> None:
    x, y = digits[2], digits[3]
    report = run_evasion(logreg, x, y, attacks=["fgsm", "pgd-10"], epsilons=[0.05, 0.2])
    assert report.model.framework == "sklearn"
    assert report.model.has_gradients
    assert report.robust_accuracy("pgd-10", 0.2) < report.results[0].clean_accuracy / 2
    assert report.robust_accuracy("pgd-10", 0.2) <= report.robust_accuracy("pgd-10", 0.05)


def test_random_forest_allows_only_black_box_attacks(forest: Any, digits: Any) -> None:
    x, y = digits[2][:40], digits[3][:40]
    with pytest.raises(GradientUnavailableError, match="needs input gradients") as info:
        run_evasion(forest, x, y, attacks=["square", "pgd-10"], epsilons=[0.1])
    assert "square" in info.value.diagnostics()
    result, outcome = run_attack(forest, x, y, SquareAttack(queries=100, p_init=0.1), 0.3)
    assert result.success_rate > 0.3
    assert np.abs(outcome.x_adv - x).max() <= 0.3 + 1e-6
    assert np.all(forest.predict(outcome.x_adv[outcome.success]) != y[outcome.success])
    assert result.queries_per_sample <= 100


def test_square_attack_on_images(digits: Any) -> None:
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10)
    )
    x = digits[2][:30].reshape(-1, 1, 8, 8)
    y = predictions(cnn, x)  # attack the untrained net's own labels: every sample starts correct
    result, outcome = run_attack(cnn, x, y, SquareAttack(queries=50), 0.3)
    assert result.clean_accuracy == 1.0
    assert result.success_rate > 0
    assert np.abs(outcome.x_adv - x).max() <= 0.3 + 1e-6


def test_apgd_checkpoints_follow_the_paper() -> None:
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_names_and_configuration_errors(mlp: Any, digits: Any) -> None:
    assert attack_from_name("pgd-40") == PGD(steps=40)
    assert attack_from_name("PGD-L2") == PGD(norm="l2", steps=10)
    assert attack_from_name("apgd-dlr") == APGD(loss="dlr")
    assert attack_from_name("cw-l2").label == "cw-l2"
    with pytest.raises(ConfigError, match="unknown attack"):
        attack_from_name("deepfool")
    with pytest.raises(ConfigError, match="positive epsilon"):
        run_attack(mlp, digits[2], digits[3], "fgsm")
    binary = torch.nn.Sequential(torch.nn.Linear(64, 2))
    with pytest.raises(ConfigError, match="at least 3 classes"):
        run_evasion(binary, digits[2], digits[3] % 2, attacks=["apgd-dlr"], epsilons=[0.1])


def test_infer_valid_range() -> None:
    assert infer_valid_range(np.array([[0.0, 0.5]])) == (0.0, 1.0)
    assert infer_valid_range(np.array([[-0.5, 0.5]])) == (-1.0, 1.0)
    assert infer_valid_range(np.array([[0.0, 200.0]])) == (0.0, 255.0)
    assert infer_valid_range(np.array([[-3.0, 4.0]])) == (-3.0, 4.0)


def test_hopskipjump_needs_only_labels(forest: Any, digits: Any) -> None:
    x, y = digits[2][:30], digits[3][:30]
    result, outcome = run_attack(forest, x, y, HopSkipJump(iterations=4, initial_evals=30, max_evals=60))
    assert result.norm == "l2"
    assert result.epsilon is None
    assert result.success_rate == 1.0
    assert np.all(forest.predict(outcome.x_adv[outcome.success]) != y[outcome.success])
    assert outcome.x_adv.min() >= 0.0
    assert outcome.x_adv.max() <= 1.0
    # the boundary search leaves the adversarial much closer than the random noise it starts from
    assert result.median_perturbation is not None
    assert result.median_perturbation < 2.0


def test_hopskipjump_approaches_carlini_wagner(mlp: Any, digits: Any) -> None:
    x, y = digits[2][:30], digits[3][:30]
    hsj, _ = run_attack(mlp, x, y, HopSkipJump(iterations=8, initial_evals=50, max_evals=200))
    cw, _ = run_attack(mlp, x, y, CarliniWagnerL2())
    assert hsj.success_rate == 1.0
    assert hsj.median_perturbation is not None
    assert cw.median_perturbation is not None
    # labels only cannot beat the white-box attack, but lands within a small factor of it
    assert cw.median_perturbation <= hsj.median_perturbation < 3 * cw.median_perturbation
