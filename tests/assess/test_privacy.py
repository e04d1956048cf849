"""Membership inference on tiny scikit-learn models: the attacks find an overfit model's members, not
a regularised one's; the metrics agree with scikit-learn's; runs repeat with the seed; bad input fails."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.tree import DecisionTreeClassifier

from garrison.assess.privacy import ATTACKS, MembershipReport, run_membership, sklearn_train_fn
from garrison.assess.privacy_lira import (
    auc,
    balanced_accuracy,
    inclusion_masks,
    membership_metrics,
    roc,
    tpr_at_fpr,
    true_class_logit,
)
from garrison.core.errors import ConfigError, InputError

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def split() -> Split:
    """Noisy synthetic data (10% flipped labels, so a forest that memorises it is overfit): 200 members,
    200 non-members, 400 population rows."""
    x, y = make_classification(
        n_samples=800, n_features=10, n_informative=5, n_classes=3, flip_y=0.1, random_state=1
    )
    x = x.astype(np.float32)
    return (x[:200], y[:200]), (x[200:400], y[200:400]), (x[400:], y[400:])


@pytest.fixture(scope="module")
def overfit_report(split: Split) -> MembershipReport:
    members, non_members, population = split
    target = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(*members)
    return run_membership(target, members, non_members, population, shadows=16, seed=0)


def test_overfit_forest_is_attacked(overfit_report: MembershipReport) -> None:
    r = overfit_report
    assert r.member_accuracy == 1.0
    assert r.non_member_accuracy < 0.9
    assert [x.attack for x in r.results] == list(ATTACKS)
    online = r.result("lira-online")
    loss = r.result("loss")
    assert online.auc > 0.7
    assert online.tpr_at_1pct_fpr > loss.tpr_at_1pct_fpr
    assert online.shadow_models == 16
    assert loss.shadow_models == 0
    assert online.members == 200
    assert online.non_members == 200
    assert loss.threshold is not None
    assert loss.threshold_tpr is not None
    assert loss.threshold_fpr is not None
    assert r.strongest().auc == max(x.auc for x in r.results)
    roc_points = online.roc
    assert roc_points[0] == (0.0, 0.0)
    assert roc_points[-1] == (1.0, 1.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(roc_points))
    assert any("non-members" in n for n in r.notes)
    assert r.to_dict()["results"][0]["attack"] == "loss"


def test_regularised_model_leaks_little() -> None:
    """A regularised linear model on ample data: every attack stays near guessing."""
    x, y = make_classification(
        n_samples=1600, n_features=5, n_informative=3, n_redundant=0, n_classes=3, flip_y=0.1, random_state=2
    )
    x = x.astype(np.float32)
    members, non_members, population = (x[:400], y[:400]), (x[400:800], y[400:800]), (x[800:], y[800:])
    target = LogisticRegression(C=0.1, max_iter=200).fit(*members)
    r = run_membership(
        target, members, non_members, population, attacks=("loss", "lira-online"), shadows=8, seed=0
    )
    for result in r.results:
        assert abs(result.auc - 0.5) < 0.08, (result.attack, result.auc)


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.4
    scores = np.round(rng.normal(size=500) + labels * 0.7, 1)  # rounded: many ties
    fpr, tpr, thr = roc(scores, labels)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    sk_fpr, sk_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert thr[0] == np.inf
    assert balanced_accuracy(fpr, tpr) == pytest.approx(np.max((sk_tpr + 1 - sk_fpr) / 2))
    for target in (0.001, 0.01, 0.1):
        assert tpr_at_fpr(fpr, tpr, target) == pytest.approx(sk_tpr[sk_fpr <= target].max())
    perfect = membership_metrics(np.r_[np.ones(50), np.zeros(50)], np.r_[np.ones(50), np.zeros(50)] > 0)
    assert perfect.auc == 1.0
    assert perfect.tpr_at_0_1pct_fpr == 1.0
    assert perfect.balanced_accuracy == 1.0


def test_true_class_logit_is_stable() -> None:
    p = np.array([[0.9, 0.1, 0.0], [1.0 - 1e-10, 1e-10, 0.0], [0.2, 0.3, 0.5]])
    logp = np.log(np.maximum(p, 1e-12))
    phi = true_class_logit(logp, np.array([0, 0, 2]), None)
    assert phi[0] == pytest.approx(np.log(0.9 / 0.1), rel=1e-6)
    assert phi[1] == pytest.approx(np.log((1 - 1e-10) / 1e-10), rel=1e-3)
    assert phi[2] == pytest.approx(0.0, abs=1e-9)
    # a class the model never saw (sklearn classes_ without it) reads as p_y at the floor
    phi_unseen = true_class_logit(logp[:1, :2], np.array([7]), np.array([0, 1]))
    assert phi_unseen[0] < -20


def test_inclusion_masks_balance_examples() -> None:
    masks = inclusion_masks(100, 8, 0.5, np.random.default_rng(0))
    assert masks.shape == (8, 100)
    assert np.all(masks.sum(axis=0) == 4)


def test_deterministic_with_seed(split: Split) -> None:
    members, non_members, population = split
    target = DecisionTreeClassifier(random_state=0).fit(*members)

    def run(seed: int) -> list[Any]:
        r = run_membership(
            target, members, non_members, population, attacks=("shadow", "lira-online"), shadows=4, seed=seed
        )
        return [(x.auc, x.tpr_at_1pct_fpr, x.roc) for x in r.results]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_train_fn_is_used(split: Split) -> None:
    members, non_members, population = split
    target = DecisionTreeClassifier(random_state=0).fit(*members)
    calls: list[int] = []
    default = sklearn_train_fn(DecisionTreeClassifier(), seed=0)

    def train(x: np.ndarray, y: np.ndarray) -> Any:
        calls.append(len(x))
        return default(x, y)

    run_membership(
        target, members, non_members, population, attacks=("lira-offline",), shadows=4, train_fn=train
    )
    assert len(calls) == 4
    assert all(170 <= n <= 230 for n in calls)  # about len(members) each, from the population only


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"attacks": ("loss", "rmia")}, ConfigError, "rmia"),
        ({"attacks": ()}, ConfigError, "none given"),
        ({"shadows": 1}, ConfigError, "at least 2"),
        ({"shadows": 10_000}, ConfigError, "shadows"),
        ({"variance": "local"}, ConfigError, "variance"),
        ({"shadow_size": 0}, ConfigError, "shadow_size"),
    ],
)
def test_bad_options(split: Split, kwargs: dict[str, Any], error: type[Exception], text: str) -> None:
    members, non_members, population = split
    target = DecisionTreeClassifier(random_state=0).fit(*members)
    with pytest.raises(error, match=text):
        run_membership(target, members, non_members, population, **kwargs)


def test_bad_data(split: Split) -> None:
    members, non_members, population = split
    target = DecisionTreeClassifier(random_state=0).fit(*members)
    with pytest.raises(InputError, match="labels"):
        run_membership(target, (members[0], members[1][:10]), non_members, population)
    with pytest.raises(InputError, match="at least one member"):
        run_membership(target, (members[0][:0], members[1][:0]), non_members, population)
    with pytest.raises(InputError, match="shapes"):
        run_membership(target, members, (non_members[0][:, :5], non_members[1]), population)
    with pytest.raises(InputError, match="pair"):
        run_membership(target, members[0], non_members, population)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="population"):
        run_membership(target, members, non_members, None, attacks=("shadow",))


def test_torch_target_needs_train_fn(split: Split) -> None:
    torch = pytest.importorskip("torch")
    members, non_members, _ = split
    net = torch.nn.Sequential(torch.nn.Linear(10, 3))
    r = run_membership(net, members, non_members, attacks=("loss",))
    assert r.result("loss").threshold is None
    assert 0.0 <= r.result("loss").auc <= 1.0
    with pytest.raises(ConfigError, match="train_fn"):
        run_membership(net, members, non_members, attacks=("lira-online",))


def test_findings_from_report(overfit_report: MembershipReport) -> None:
    from garrison.assess.privacy_rules import (
        DETECTOR,
        HIGH_MEMBERSHIP_AUC,
        MIA_RULES,
        MembershipThresholds,
        membership_findings,
    )
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.evidence import Metric
    from garrison.core.rules import rule_problems

    assert rule_problems(HIGH_MEMBERSHIP_AUC) == []
    assert MIA_RULES == (HIGH_MEMBERSHIP_AUC,)
    asset = Asset(kind=AssetKind.MODEL, locator="models/tree.joblib")
    found = membership_findings(overfit_report, asset)
    assert len(found) == 1
    finding = found[0]
    strongest = overfit_report.strongest()
    assert finding.rule is HIGH_MEMBERSHIP_AUC
    assert finding.detector == DETECTOR
    assert strongest.attack in finding.message
    metric = finding.evidence[0]
    assert isinstance(metric, Metric)
    assert metric.name == f"membership_auc[{strongest.attack}]"
    assert metric.value == pytest.approx(strongest.auc, abs=1e-6)
    assert metric.threshold == 0.6
    # the threshold comes from the policy: above the strongest AUC, no finding
    assert membership_findings(overfit_report, asset, MembershipThresholds(max_auc=0.999)) == []
    with pytest.raises(ConfigError, match="max_auc"):
        MembershipThresholds(max_auc=0.4)
    with pytest.raises(ConfigError, match="unknown"):
        MembershipThresholds.from_mapping({"max_aucc": 0.7})
    assert MembershipThresholds.from_mapping({"max_auc": 0.7}).max_auc == 0.7


def test_torch_target_with_train_fn(split: Split) -> None:
    torch = pytest.importorskip("torch")
    members, non_members, population = split

    def train(x: np.ndarray, y: np.ndarray) -> Any:
        torch.manual_seed(len(x))
        net = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        for _ in range(60):  # plain full-batch gradient descent (a torch optimizer's first use is slow)
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            with torch.no_grad():
                for p in net.parameters():
                    p.sub_(0.5 * p.grad)
        return net.eval()

    target = train(*members)
    r = run_membership(
        target, members, non_members, population, attacks=("lira-online",), shadows=4, train_fn=train
    )
    assert r.member_accuracy > r.non_member_accuracy
    assert r.result("lira-online").auc > 0.6


def test_torch_train_fn_reinitialises_and_refuses_bare_parameters() -> None:
    import torch

    from garrison.assess.privacy import torch_train_fn

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    before = net[0].weight.detach().clone()
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    train = torch_train_fn(net, epochs=2, seed=1)
    first, second = train(x, y), train(x, y)
    assert torch.equal(net[0].weight, before)  # the target itself is never touched
    assert not torch.equal(first[0].weight, before)
    assert not torch.equal(first[0].weight, second[0].weight)  # seeded per call

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return v * self.scale

    with pytest.raises(ConfigError, match="scale"):
        torch_train_fn(Scaled())
    with pytest.raises(ConfigError, match="epochs"):
        torch_train_fn(net, epochs=0)


def test_sklearn_shadows_take_image_shaped_inputs() -> None:
    """Rows of shape (1, 4, 4) reach a forest flattened, as the adapter feeds the target."""
    x, y = make_classification(n_samples=160, n_features=16, n_informative=8, random_state=0)
    images = x.astype(np.float32).reshape(-1, 1, 4, 4)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[:80], y[:80])
    report = run_membership(
        forest, (images[:40], y[:40]), (images[80:120], y[80:120]), (images[120:], y[120:]),
        attacks=("shadow",), shadows=2,
    )  # fmt: skip
    assert report.results[0].shadow_models == 2
    assert report.member_accuracy == 1.0
