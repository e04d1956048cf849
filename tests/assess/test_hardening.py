"""Hardening helpers: adversarial training, gateway-equivalent output hardening, DP training with Opacus."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
import torch

from garrison.assess.adapters import GradientUnavailableError, OutputKind
from garrison.assess.evasion import run_attack
from garrison.assess.hardening import EpochStats, HardenedOutputs, adversarial_training, harden_outputs
from garrison.assess.hardening_dp import OPACUS_VERSION, train_dp
from garrison.core.errors import ConfigError, GarrisonError, InputError, MissingExtraError
from garrison.gateway.output_controls import OutputPolicy, apply_output_policy

# --- adversarial training ----------------------------------------------------------------------------


def robust_vs_fragile(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: one feature with margin 0.5 (robust at ε = 0.15) and twenty with margin 0.1, each
    weak alone but together very predictive, and flipped by an ε = 0.15 perturbation (Tsipras et al.)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = (2 * y - 1)[:, None]
    strong = sign * 0.5 + rng.normal(0, 0.1, (n, 1))
    weak = sign * 0.1 + rng.normal(0, 0.1, (n, 20))
    return np.concatenate([strong, weak], 1).astype(np.float32), y.astype(np.int64)


def small_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(21, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


RANGE = (-3.0, 3.0)
AT = {"epsilon": 0.15, "steps": 4, "epochs": 8, "batch_size": 50, "lr": 0.01, "seed": 0, "valid_range": RANGE}


def test_adversarial_training_raises_robust_accuracy_over_plain_training() -> None:
    x, y = robust_vs_fragile(300, 0)
    tx, ty = robust_vs_fragile(200, 1)
    net = small_net()
    before = [p.detach().clone() for p in net.parameters()]
    seen: list[EpochStats] = []
    plain, _ = adversarial_training(net, x, y, **AT, mix=0.0)  # type: ignore[arg-type]
    robust, history = adversarial_training(net, x, y, **AT, mix=1.0, progress=seen.append)  # type: ignore[arg-type]
    plain_result, _ = run_attack(plain, tx, ty, "pgd-10", 0.15, valid_range=RANGE)
    robust_result, _ = run_attack(robust, tx, ty, "pgd-10", 0.15, valid_range=RANGE)
    assert plain_result.clean_accuracy >= 0.95
    assert robust_result.clean_accuracy >= 0.95
    assert plain_result.robust_accuracy < 0.5  # the weak features carry the plain model
    assert robust_result.robust_accuracy >= plain_result.robust_accuracy + 0.4
    # the caller's module is untouched; the history is the one reported through progress
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert history.epochs == tuple(seen)
    assert [e.epoch for e in seen] == list(range(1, 9))
    assert history.step_size == pytest.approx(2.5 * 0.15 / 4)
    assert history.valid_range == RANGE
    assert seen[-1].adversarial_accuracy > seen[0].adversarial_accuracy
    assert history.to_dict()["epochs"][0]["epoch"] == 1
    assert not robust.training


def test_adversarial_training_is_deterministic_and_leaves_global_rng_alone() -> None:
    x, y = robust_vs_fragile(100, 2)
    kw = {**AT, "epochs": 2}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, ha = adversarial_training(small_net(), x, y, **kw)  # type: ignore[arg-type]
    torch.set_rng_state(state)
    b, hb = adversarial_training(small_net(), x, y, **kw)  # type: ignore[arg-type]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert [e.adversarial_loss for e in ha.epochs] == [e.adversarial_loss for e in hb.epochs]
    # small_net() reseeds globally; after the training the global stream continues from there
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    adversarial_training(a, x, y, **kw)  # type: ignore[arg-type]
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"epsilon": 0.0}, ConfigError),
        ({"mix": 1.5}, ConfigError),
        ({"steps": 0}, ConfigError),
        ({"valid_range": (1.0, 1.0)}, ConfigError),
    ],
)
def test_adversarial_training_rejects_bad_settings(override: dict[str, Any], error: type[Exception]) -> None:
    x, y = robust_vs_fragile(20, 0)
    with pytest.raises(error):
        adversarial_training(small_net(), x, y, **{**AT, **override})


def test_adversarial_training_rejects_bad_inputs() -> None:
    x, y = robust_vs_fragile(20, 0)
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        adversarial_training(object(), x, y, **AT)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="labels"):
        adversarial_training(small_net(), x, y[:5], **AT)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="out of range"):
        adversarial_training(small_net(), x, y + 5, **AT)  # type: ignore[arg-type]


# --- output hardening ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "k", "decimals"),
    [
        ("label", 1, None),
        ("top_k", 1, None),
        ("top_k", 3, None),
        ("top_k", 3, 2),
        ("round", 1, 1),
        ("round", 1, 3),
    ],
)
def test_hardened_outputs_are_exactly_the_gateways(
    mlp: torch.nn.Module, digits: Any, mode: str, k: int, decimals: int | None
) -> None:
    x = digits[2][:40]
    hardened = harden_outputs(mlp, mode=mode, k=k, decimals=decimals)
    full = hardened.inner.probabilities(x).tolist()
    policy = OutputPolicy(mode=mode, k=k, decimals=decimals)  # type: ignore[arg-type]
    gateway = apply_output_policy(policy, full)
    assert hardened.outputs(x) == gateway
    assert apply_output_policy(policy, {"probabilities": full}) == {"probabilities": hardened.outputs(x)}
    # predict is the label a caller reads from the gateway's answer
    if mode == "label":
        assert hardened.predict(x).tolist() == gateway
    elif mode == "top_k":
        assert hardened.predict(x).tolist() == [row[0][0] for row in gateway]
        shown = hardened.probabilities(x)
        assert ((shown > 0).sum(1) <= k).all()
        for row, pairs in zip(shown, gateway, strict=True):
            assert {int(i) for i in np.flatnonzero(row)} <= {i for i, _ in pairs}
            for i, p in pairs:
                assert row[i] == np.float32(p)
    else:
        assert hardened.predict(x).tolist() == np.argmax(np.asarray(gateway), axis=1).tolist()
        assert np.array_equal(hardened.probabilities(x), np.asarray(gateway, dtype=np.float32))


class FixedScores(torch.nn.Module):
    """Returns its input: rows of log-probabilities chosen by the test."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_round_mode_ties_and_label_scores_as_a_caller_reads_them() -> None:
    p = np.array([[0.44, 0.46, 0.10], [0.46, 0.44, 0.10], [0.05, 0.05, 0.90]])
    x = np.log(p).astype(np.float32)
    rounded = harden_outputs(FixedScores(), mode="round", decimals=1)
    assert rounded.outputs(x) == apply_output_policy(OutputPolicy(mode="round", decimals=1), p.tolist())
    # to one decimal 0.44 and 0.46 stay apart (0.4, 0.5): the first row reads class 1, the second class 0
    assert rounded.predict(x).tolist() == [1, 0, 2]
    coarse = harden_outputs(FixedScores(), mode="round", decimals=0)
    assert coarse.predict(x).tolist() == [0, 0, 2]  # all-zero rows: the caller's argmax is the first column
    label = harden_outputs(FixedScores(), mode="label")
    assert label.output_kind is OutputKind.LABELS
    assert not label.has_gradients
    assert np.array_equal(label.probabilities(x), np.eye(3, dtype=np.float32)[[1, 0, 2]])
    scores = label.scores(x)
    assert scores[0, 1] == 0.0
    assert scores[0, 0] == pytest.approx(math.log(1e-12))
    with pytest.raises(GradientUnavailableError):
        label.gradient(x, np.array([1, 0, 2]))
    assert isinstance(label, HardenedOutputs)
    assert label.name.endswith("[label]")


def test_harden_outputs_rejects_what_the_gateway_rejects(mlp: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="decimals"):
        harden_outputs(mlp, mode="round")
    with pytest.raises(ConfigError, match="output mode"):
        harden_outputs(mlp, mode="full")
    with pytest.raises(ConfigError):
        harden_outputs(mlp, mode="top-k", k=0)


# --- differentially private training -------------------------------------------------------------------


def dp_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def dp_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


DP = {"delta": 1e-3, "epochs": 4, "batch_size": 20, "lr": 0.5, "max_grad_norm": 1.0, "seed": 0}


def test_train_dp_spends_at_most_the_target_and_trains() -> None:
    x, y = dp_data()
    net = dp_net()
    before = [p.detach().clone() for p in net.parameters()]
    trained, report = train_dp(net, x, y, target_epsilon=0.5, **DP)  # type: ignore[arg-type]
    assert 0 < report.epsilon <= 0.5
    assert report.noise_multiplier > 0
    assert report.accountant == "prv"
    assert report.opacus_version == OPACUS_VERSION
    assert report.steps == 4 * 10
    assert report.sample_rate == pytest.approx(0.1)
    assert type(trained) is torch.nn.Sequential
    assert not trained.training
    assert all(getattr(p, "grad_sample", None) is None for p in trained.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trained.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    with torch.no_grad():
        accuracy = float((trained(torch.as_tensor(x)).argmax(1).numpy() == y).mean())
    assert accuracy > 0.7  # learned something despite the noise


def test_train_dp_is_deterministic_and_has_a_non_private_baseline() -> None:
    x, y = dp_data()
    a, ra = train_dp(dp_net(), x, y, target_epsilon=1.0, accountant="rdp", **DP)  # type: ignore[arg-type]
    b, rb = train_dp(dp_net(), x, y, target_epsilon=1.0, accountant="rdp", **DP)  # type: ignore[arg-type]
    assert ra.epsilon <= 1.0
    assert ra.accountant == "rdp"
    assert ra.epsilon == rb.epsilon
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    _plain, rp = train_dp(dp_net(), x, y, target_epsilon=math.inf, **DP)  # type: ignore[arg-type]
    assert rp.epsilon == math.inf
    assert rp.noise_multiplier == 0.0
    assert rp.accountant == "none"
    assert rp.to_dict()["epsilon"] == "inf"
    assert rp.final_loss < ra.final_loss  # no clipping and no noise: a better fit


def test_train_dp_rejects_what_opacus_cannot_guarantee(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = dp_data()
    with pytest.raises(ConfigError, match="1/n"):
        train_dp(dp_net(), x, y, target_epsilon=1.0, **{**DP, "delta": 0.01})  # type: ignore[arg-type]
    bn = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(GarrisonError, match="privately") as unsupported:
        train_dp(bn, x, y, target_epsilon=1.0, **DP)  # type: ignore[arg-type]
    assert "GroupNorm" in (unsupported.value.hint or "")
    monkeypatch.setitem(sys.modules, "opacus", None)
    with pytest.raises(MissingExtraError) as caught:
        train_dp(dp_net(), x, y, target_epsilon=1.0, **DP)  # type: ignore[arg-type]
    assert caught.value.hint == f"pip install opacus=={OPACUS_VERSION}"
