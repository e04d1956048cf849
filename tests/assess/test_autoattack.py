"""APGD-T, FAB-T and the AutoAttack standard set on tiny models: budgets exact, verdicts real, the
ensemble at least as strong as its parts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from garrison.assess import APGD, attack_from_name, run_attack, run_evasion
from garrison.assess.attacks import APGDTargeted, AutoAttack, FABTargeted
from garrison.assess.evasion_fab import project_linf_halfspace_box
from garrison.core.errors import ConfigError


def predictions(model: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).argmax(1).numpy()


@pytest.fixture(scope="module")
def blobs() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """Five well separated classes in [0, 1]^12 and a linear model that separates them."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.2, 0.8, size=(5, 12)).astype(np.float32)
    y = np.repeat(np.arange(5), 40)
    x = np.clip(centres[y] + rng.normal(0, 0.03, size=(len(y), 12)), 0, 1).astype(np.float32)
    torch.manual_seed(0)
    net = torch.nn.Linear(12, 5)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(150):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        with torch.no_grad():
            for param in net.parameters():
                param.sub_(2.0 * param.grad)
    net.eval()
    assert (predictions(net, x) == y).mean() == 1.0
    return net, x, y


def check_budget_and_verdicts(model: Any, x: np.ndarray, y: np.ndarray, outcome: Any, eps: float) -> None:
    size = np.abs(outcome.x_adv.astype(np.float64) - x).reshape(len(x), -1).max(1)
    assert size.max() <= eps + 1e-6
    assert outcome.x_adv.min() >= 0.0
    assert outcome.x_adv.max() <= 1.0
    wrong = predictions(model, outcome.x_adv) != y
    np.testing.assert_array_equal(outcome.success, wrong & outcome.clean_correct)


@pytest.mark.parametrize("spec", [APGDTargeted(steps=30), FABTargeted(steps=30)])
def test_targeted_attacks_break_a_separable_model_at_a_large_epsilon(blobs: Any, spec: Any) -> None:
    net, x, y = blobs
    result, outcome = run_attack(net, x, y, spec, 0.4, valid_range=(0.0, 1.0))
    assert result.attack == spec.label
    assert result.success_rate >= 0.95
    check_budget_and_verdicts(net, x, y, outcome, 0.4)


@pytest.mark.parametrize("spec", [APGDTargeted(steps=30), FABTargeted(steps=30)])
def test_targeted_attacks_break_nothing_at_a_tiny_epsilon(blobs: Any, spec: Any) -> None:
    net, x, y = blobs
    result, outcome = run_attack(net, x, y, spec, 1e-4, valid_range=(0.0, 1.0))
    assert result.success_rate == 0.0
    np.testing.assert_array_equal(outcome.x_adv, x)


def test_apgd_t_l2_respects_its_l2_budget(blobs: Any) -> None:
    net, x, y = blobs
    result, outcome = run_attack(net, x, y, APGDTargeted(norm="l2", steps=20), 0.6, valid_range=(0.0, 1.0))
    assert result.attack == "apgd-t-l2"
    assert result.success_rate > 0.5
    size = np.linalg.norm((outcome.x_adv.astype(np.float64) - x).reshape(len(x), -1), axis=1)
    assert size.max() <= 0.6 + 1e-5
    assert outcome.x_adv.min() >= 0.0
    assert outcome.x_adv.max() <= 1.0
    np.testing.assert_array_equal(outcome.success, predictions(net, outcome.x_adv) != y)


def test_fab_finds_near_minimal_perturbations(blobs: Any) -> None:
    """FAB is a minimum-norm attack: at a generous budget its adversarials are much smaller than ε."""
    net, x, y = blobs
    result, _ = run_attack(net, x, y, FABTargeted(steps=50), 0.4, valid_range=(0.0, 1.0))
    assert result.median_perturbation is not None
    # APGD lands on the budget's edge; FAB stops near the boundary
    pgd_result, _ = run_attack(net, x, y, APGD(steps=30), 0.4, valid_range=(0.0, 1.0))
    assert pgd_result.median_perturbation is not None
    assert result.median_perturbation < 0.75 * pgd_result.median_perturbation


def test_halfspace_box_projection_is_feasible_and_minimal() -> None:
    gen = torch.Generator().manual_seed(0)
    n, d = 200, 30
    x = torch.rand(n, d, generator=gen)
    w = torch.randn(n, d, generator=gen) * (torch.rand(n, d, generator=gen) > 0.2)
    r = torch.randn(n, generator=gen) * 10
    step = project_linf_halfspace_box(x, w, r, 0.0, 1.0)
    inside = x + step
    assert inside.min() >= 0.0
    assert inside.max() <= 1.0
    reach = (w * step).sum(1)
    best_possible = (w.abs() * torch.where(w > 0, 1 - x, x)).sum(1)
    feasible = best_possible >= r
    assert bool(feasible.any())
    assert bool((~feasible).any())
    assert torch.all(reach[feasible] >= r[feasible] - 1e-4)
    # infeasible rows go to the corner that comes closest
    torch.testing.assert_close(reach[~feasible], best_possible[~feasible])
    # rows already on the right side do not move
    assert torch.all(step[r <= 0] == 0)
    # minimal: a slightly smaller L∞ step along the same rule falls short
    s = step.abs().amax(1)
    room = torch.where(w > 0, 1 - x, x)
    shrunk = w.sign() * torch.minimum((s * 0.999)[:, None], room)
    active = feasible & (r > 0)
    assert torch.all((w * shrunk).sum(1)[active] < r[active])


def test_autoattack_is_at_least_as_strong_as_its_parts(mlp: Any, digits: Any) -> None:
    x, y = digits[2][:60], digits[3][:60]
    eps = 0.05
    aa = AutoAttack(apgd_steps=20, fab_steps=20, square_queries=300)
    parts = {
        "apgd-ce": APGD(steps=20),
        "apgd-t": APGDTargeted(steps=20),
        "fab-t": FABTargeted(steps=20),
        "square": attack_from_name("square").__class__(queries=300, p_init=0.8),
    }
    result, outcome = run_attack(mlp, x, y, aa, eps, seed=3)
    assert result.attack == "autoattack"
    check_budget_and_verdicts(mlp, x, y, outcome, eps)
    alone = {name: run_attack(mlp, x, y, spec, eps, seed=3) for name, spec in parts.items()}
    # the first stage sees the same samples and the same random state as APGD-CE alone; FAB-T is
    # deterministic: whatever they break, the ensemble breaks
    for name in ("apgd-ce", "fab-t"):
        broken_alone = alone[name][1].success
        assert np.all(outcome.success[broken_alone]), name
    strongest = min(r.robust_accuracy for r, _ in alone.values())
    assert result.robust_accuracy <= strongest
    assert 0.0 < result.robust_accuracy < result.clean_accuracy


def test_names_and_class_requirements(digits: Any) -> None:
    assert attack_from_name("apgd-t") == APGDTargeted()
    assert attack_from_name("APGD-T-L2") == APGDTargeted(norm="l2")
    assert attack_from_name("fab-t") == FABTargeted()
    assert attack_from_name("autoattack") == AutoAttack()
    torch.manual_seed(0)
    three = torch.nn.Linear(64, 3)
    with pytest.raises(ConfigError, match="at least 4 classes"):
        run_evasion(three, digits[2], digits[3] % 3, attacks=["apgd-t"], epsilons=[0.1])
    with pytest.raises(ConfigError, match="at least 1"):
        run_attack(three, digits[2], digits[3] % 3, FABTargeted(targets=0), 0.1)
    # with fewer than four classes AutoAttack runs without APGD-T and still respects the budget
    binary = torch.nn.Linear(64, 2)
    yb = predictions(binary, digits[2])
    small = AutoAttack(apgd_steps=10, fab_steps=10, square_queries=50)
    result, outcome = run_attack(binary, digits[2], yb, small, 0.2)
    assert result.clean_accuracy == 1.0
    assert result.success_rate > 0.5
    check_budget_and_verdicts(binary, digits[2], yb, outcome, 0.2)
