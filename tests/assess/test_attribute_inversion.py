"""Attribute inference and model inversion on tiny models: a model that uses (and memorises) the
sensitive column leaks it beyond the baseline, one that ignores it does not; a trained classifier's class
representatives are identifiable, an untrained one's are not; bad input fails with a GarrisonError."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from garrison.assess.adapters import GradientUnavailableError
from garrison.assess.inversion import (
    ClassReconstruction,
    InversionReport,
    run_model_inversion,
    score_reconstructions,
)
from garrison.assess.privacy_attribute import (
    ATTACKS,
    AttributeInferenceReport,
    run_attribute_inference,
)
from garrison.core.errors import ConfigError, GarrisonError, InputError

Table = tuple[np.ndarray, np.ndarray]

SENSITIVE = 3


def table(n: int, seed: int) -> Table:
    """Six noise columns plus a sensitive column 3 in {0, 1, 2} that shifts column 0 and the label."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 3, n)
    other = rng.normal(size=(n, 6))
    other[:, 0] += 0.5 * s
    logit = other[:, 1] + other[:, 2] + 1.2 * (s == 2) - 1.0 * (s == 1) + rng.normal(size=n)
    x = np.column_stack([other[:, :3], s, other[:, 3:]])
    return x, (logit > 0).astype(np.int64)


@pytest.fixture(scope="module")
def groups() -> tuple[Table, Table, Table]:
    """Members, non-members and auxiliary records, 200 each."""
    x, y = table(600, 0)
    return (x[:200], y[:200]), (x[200:400], y[200:400]), (x[400:], y[400:])


@pytest.fixture(scope="module")
def forest_report(groups: Any) -> AttributeInferenceReport:
    """Every attack on a forest that memorised the members."""
    members, non_members, aux = groups
    target = RandomForestClassifier(n_estimators=40, random_state=0).fit(*members)
    return run_attribute_inference(target, members, non_members, aux, sensitive=SENSITIVE)


# --- attribute inference -----------------------------------------------------------------------------


def test_every_attack_runs_and_is_measured(forest_report: AttributeInferenceReport) -> None:
    rep = forest_report
    assert [r.attack for r in rep.results] == list(ATTACKS)
    assert rep.kind == "categorical"
    assert rep.values == (0.0, 1.0, 2.0)
    assert rep.bin_edges == ()
    assert (rep.members, rep.non_members, rep.auxiliary) == (200, 200, 200)
    assert rep.model_member_accuracy == 1.0 > rep.model_non_member_accuracy
    for r in rep.results:
        for v in (r.member_accuracy, r.non_member_accuracy, r.member_balanced_accuracy):
            assert 0.0 <= v <= 1.0
        assert r.uses_model == (r.queries > 0)
    best_base = max(rep.result(a).member_accuracy for a in ("baseline", "baseline-label"))
    for r in rep.results:
        assert r.member_advantage == pytest.approx(r.member_accuracy - best_base)
    # 3 candidate values for 400 attacked rows; output-match also reads the 400 records' own outputs.
    assert rep.result("confidence").queries == 1200
    assert rep.result("output-match").queries == 1600
    assert rep.result("learned").queries == 600 * 4


def test_a_memorising_model_leaks_the_attribute_of_its_members(
    forest_report: AttributeInferenceReport,
) -> None:
    rep = forest_report
    confidence = rep.result("confidence")
    # Fredrikson's attack does better on the training records than on the others (the baselines do not).
    assert confidence.member_accuracy > confidence.non_member_accuracy + 0.1
    assert confidence.member_advantage > confidence.non_member_advantage + 0.05
    # Seeing the record's own output gives the value away almost always.
    assert rep.result("output-match").member_accuracy > 0.8
    assert rep.result("output-match").member_advantage > 0.2
    assert rep.strongest().attack == "output-match"
    assert rep.majority_accuracy < rep.result("baseline-label").member_accuracy


def test_a_model_that_ignores_the_column_adds_nothing(groups: Any) -> None:
    members, non_members, aux = groups
    blind = members[0].copy()
    blind[:, SENSITIVE] = 0.0  # the model never sees the column: its weight stays 0
    target = LogisticRegression(max_iter=200).fit(blind, members[1])
    assert target.coef_[0, SENSITIVE] == 0.0
    rep = run_attribute_inference(
        target,
        members,
        non_members,
        aux,
        sensitive=SENSITIVE,
        attacks="baseline-label,confidence,output-match",
    )
    for attack in ("confidence", "output-match"):
        assert rep.result(attack).member_advantage <= 0.02
        assert rep.result(attack).member_accuracy == pytest.approx(rep.majority_accuracy)


def test_torch_model_and_numeric_binned_column(groups: Any) -> None:
    members, non_members, aux = groups
    rng = np.random.default_rng(1)
    tables = []
    for x, y in (members, non_members, aux):
        noisy = x.copy()
        noisy[:, SENSITIVE] += rng.normal(scale=0.2, size=len(x))  # continuous
        tables.append((noisy.astype(np.float32), y))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    rep = run_attribute_inference(
        net, *tables, sensitive=SENSITIVE, bins=3, attacks=("baseline", "confidence")
    )
    assert rep.kind == "binned"
    assert len(rep.values) == 3
    assert len(rep.bin_edges) == 2
    assert list(rep.values) == sorted(rep.values)
    assert any("binned into 3" in n for n in rep.notes)
    assert rep.model == "Sequential"


def test_labels_only_model_explicit_values_and_determinism(groups: Any) -> None:
    members, non_members, aux = groups
    target = SVC().fit(*members)  # no predict_proba, no coef_: labels only
    kwargs: dict[str, Any] = {
        "sensitive": SENSITIVE,
        "values": [2, 0, 1],
        "attacks": ["baseline", "confidence"],
    }
    rep = run_attribute_inference(target, members, non_members, aux, **kwargs)
    again = run_attribute_inference(target, members, non_members, aux, **kwargs)
    assert rep.values == (0.0, 1.0, 2.0)
    assert any("labels only" in n for n in rep.notes)
    assert [r.member_accuracy for r in rep.results] == [r.member_accuracy for r in again.results]
    with pytest.raises(InputError, match="holds 2, which is not among values"):
        run_attribute_inference(target, members, non_members, aux, sensitive=SENSITIVE, values=[0, 1])


def test_without_a_baseline_the_majority_guess_is_the_reference(groups: Any) -> None:
    members, non_members, aux = groups
    ints = [(x.round().astype(np.int64), y) for x, y in (members, non_members, aux)]
    target = RandomForestClassifier(n_estimators=10, random_state=0).fit(*ints[0])
    rep = run_attribute_inference(target, *ints, sensitive=SENSITIVE, attacks="confidence-informed")
    (only,) = rep.results
    assert any("no baseline was run" in n for n in rep.notes)
    assert only.member_advantage == pytest.approx(only.member_accuracy - rep.majority_accuracy)


def test_report_round_trips_to_json(forest_report: AttributeInferenceReport) -> None:
    data = json.loads(json.dumps(forest_report.to_dict()))
    assert data["sensitive_column"] == SENSITIVE
    assert [r["attack"] for r in data["results"]] == list(ATTACKS)
    with pytest.raises(KeyError):
        forest_report.result("nope")
    baselines_only = AttributeInferenceReport(
        model="m",
        sensitive_column=0,
        kind="categorical",
        values=(0.0, 1.0),
        bin_edges=(),
        members=1,
        non_members=1,
        auxiliary=1,
        majority_accuracy=0.5,
        model_member_accuracy=1.0,
        model_non_member_accuracy=1.0,
    )
    with pytest.raises(ValueError, match="no attribute-inference attack"):
        baselines_only.strongest()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"sensitive": 7}, ConfigError, "sensitive column 7 is out of range: the records have 7 columns"),
        ({"sensitive": -1}, ConfigError, "sensitive column -1 is out of range"),
        ({"sensitive": True}, ConfigError, "column index"),
        ({"attacks": "confidence,guess"}, ConfigError, "unknown attribute-inference attack.*guess"),
        ({"members": "lenient"}, InputError, "members must be a pair"),
        ({"members": (np.zeros((4, 7)), np.zeros(3))}, InputError, "members: 4 rows but 3 labels"),
        ({"non_members": (np.zeros((4, 5)), np.zeros(4))}, InputError, "column counts differ"),
        ({"auxiliary": (np.zeros(4), np.zeros(4))}, InputError, "auxiliary: x must be a 2-D table"),
        ({"auxiliary": (np.zeros((0, 7)), np.zeros(0))}, InputError, "auxiliary is empty"),
        ({"values": [1]}, ConfigError, "at least 2 distinct"),
    ],
)
def test_bad_input_is_named(
    groups: Any, change: dict[str, Any], error: type[GarrisonError], message: str
) -> None:
    members, non_members, aux = groups
    target = RandomForestClassifier(n_estimators=3, random_state=0).fit(*members)
    kwargs: dict[str, Any] = {
        "members": members,
        "non_members": non_members,
        "auxiliary": aux,
        "sensitive": 3,
    }
    kwargs.update(change)
    with pytest.raises(error, match=message):
        run_attribute_inference(target, **kwargs)


def test_non_finite_and_degenerate_columns_are_named(groups: Any) -> None:
    members, non_members, aux = groups
    target = RandomForestClassifier(n_estimators=3, random_state=0).fit(*members)
    bad = members[0].copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="members: x has a non-finite value at row 3, column 2"):
        run_attribute_inference(target, (bad, members[1]), non_members, aux, sensitive=SENSITIVE)
    flat = [(x.copy(), y) for x, y in (members, non_members, aux)]
    for x, _ in flat:
        x[:, SENSITIVE] = 1.0
    with pytest.raises(InputError, match="single value"):
        run_attribute_inference(target, *flat, sensitive=SENSITIVE)
    wide = [(np.column_stack([x, np.arange(len(x))]), y) for x, y in (members, non_members, aux)]
    with pytest.raises(ConfigError, match="bins must be an integer"):
        run_attribute_inference(target, *wide, sensitive=7, bins=1)
    labels = (members[0], np.full(len(members[0]), 5))
    with pytest.raises(InputError, match="labels not among"):
        run_attribute_inference(target, labels, non_members, aux, sensitive=SENSITIVE)


# --- model inversion ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inversion(mlp: torch.nn.Module, digits: Any) -> InversionReport:
    """MI-Face on the trained torch MLP of 64 flattened pixels, viewed as 8×8 images."""
    return run_model_inversion(mlp, reference=(digits[0], digits[1]), image_shape=(8, 8), steps=120)


def test_trained_model_gives_its_classes_away(inversion: InversionReport) -> None:
    rep = inversion
    assert len(rep.reconstructions) == 10
    assert len(rep.class_means) == 10
    assert rep.identification_rate is not None
    assert rep.identification_rate >= 0.8
    assert rep.identified == round(rep.identification_rate * 10)
    assert rep.mean_confidence > 0.9
    assert rep.mean_margin is not None
    assert rep.mean_margin > 0
    assert rep.chance_rate == pytest.approx(0.1)
    assert rep.gradient_queries == 10 * 120
    assert rep.valid_range == (0.0, 1.0)
    for r in rep.reconstructions:
        assert r.image.shape == (8, 8)
        assert r.image.min() >= 0.0
        assert r.image.max() <= 1.0
        assert r.label == r.class_index
        assert r.ssim is not None
        assert -1.0 <= r.ssim <= 1.0
    assert rep.reconstruction(3).class_index == 3
    with pytest.raises(KeyError):
        rep.reconstruction(11)


def test_untrained_model_gives_nothing_away(digits: Any) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    rep = run_model_inversion(net, reference=(digits[0], digits[1]), image_shape=(8, 8), steps=120)
    assert rep.identification_rate is not None
    assert rep.identification_rate <= 0.4
    assert rep.mean_margin is not None
    assert rep.mean_margin < 0


def test_scikit_learn_linear_model_and_subset_of_classes(logreg: LogisticRegression, digits: Any) -> None:
    rep = run_model_inversion(logreg, reference=(digits[0], digits[1]), classes=[1, 7], steps=60, init="low")
    assert [r.class_index for r in rep.reconstructions] == [1, 7]
    assert [r.label for r in rep.reconstructions] == [1, 7]
    assert rep.image_shape == (64,)
    assert any("total variation is off" in n for n in rep.notes)
    assert all(r.identifiable for r in rep.reconstructions)


def test_scikit_learn_mlp_is_inverted_through_its_torch_conversion(sk_mlp: Any, digits: Any) -> None:
    before = run_model_inversion(sk_mlp, reference=(digits[0], digits[1]), classes=[4], steps=1)
    after = run_model_inversion(sk_mlp, reference=(digits[0], digits[1]), classes=[4], steps=60)
    assert after.reconstructions[0].confidence > max(0.9, before.reconstructions[0].confidence)
    assert after.reconstructions[0].identifiable


def test_without_reference_only_confidence_is_measured(mlp: torch.nn.Module) -> None:
    rep = run_model_inversion(mlp, input_shape=(64,), classes=[0], steps=30, init="random")
    assert rep.identification_rate is None
    assert rep.mean_similarity is None
    assert rep.class_means == ()
    r = rep.reconstructions[0]
    assert r.identifiable is None
    assert r.similarity is None
    assert r.nearest_class is None
    assert any("clipped to [0, 1]" in n for n in rep.notes)
    data = json.loads(json.dumps(rep.to_dict(images=False)))
    assert "image" not in data["reconstructions"][0]
    assert data["class_means"] == []
    with pytest.raises(ConfigError, match="input shape of Sequential is unknown"):
        run_model_inversion(mlp, steps=5)


def test_inversion_report_keeps_images_for_the_report(inversion: InversionReport) -> None:
    data = json.loads(json.dumps(inversion.to_dict()))
    assert np.asarray(data["reconstructions"][0]["image"]).shape == (8, 8)
    assert np.asarray(data["class_means"]).shape == (10, 8, 8)


def test_class_means_score_as_identifiable(mlp: torch.nn.Module, digits: Any) -> None:
    x, y = digits[0], digits[1]
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    recs = score_reconstructions(mlp, means, list(range(10)), (x, y))
    assert all(isinstance(r, ClassReconstruction) and r.identifiable for r in recs)
    assert all(r.similarity == pytest.approx(1.0) and r.ssim == pytest.approx(1.0) for r in recs)
    with pytest.raises(InputError, match="3 images but 2 classes"):
        score_reconstructions(mlp, means[:3], [0, 1], (x, y))
    with pytest.raises(InputError, match="non-finite"):
        score_reconstructions(mlp, np.full((1, 64), np.inf), [0], (x, y))


def test_black_box_model_cannot_be_inverted(forest: RandomForestClassifier, digits: Any) -> None:
    with pytest.raises(GradientUnavailableError, match="needs input gradients"):
        run_model_inversion(forest, reference=(digits[0], digits[1]))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"steps": 0}, ConfigError, "steps must be an integer"),
        ({"learning_rate": float("nan")}, ConfigError, "learning_rate must be a finite number"),
        ({"tv_weight": -1.0}, ConfigError, "tv_weight must be at least 0"),
        ({"init": "noise"}, ConfigError, "unknown init 'noise'"),
        ({"classes": [10]}, ConfigError, "class 10 is not a class index"),
        ({"classes": [1, 1]}, ConfigError, "distinct class indices"),
        ({"valid_range": (1.0, 0.0)}, ConfigError, "low < high"),
        ({"valid_range": (0.0, float("inf"))}, ConfigError, "two finite numbers"),
        ({"image_shape": (7, 7)}, ConfigError, r"image_shape \(7, 7\) does not hold"),
        ({"input_shape": (32,)}, InputError, "reference inputs have shape"),
        ({"reference": (np.zeros((3, 64)), np.zeros(2))}, InputError, "reference: 3 inputs but 2 labels"),
        ({"reference": (np.full((2, 64), np.nan), np.zeros(2))}, InputError, "non-finite value"),
    ],
)
def test_bad_inversion_input_is_named(
    mlp: torch.nn.Module, digits: Any, change: dict[str, Any], error: type[GarrisonError], message: str
) -> None:
    kwargs: dict[str, Any] = {"reference": (digits[0][:50], digits[1][:50]), "steps": 2}
    kwargs.update(change)
    with pytest.raises(error, match=message):
        run_model_inversion(mlp, **kwargs)


# --- findings ------------------------------------------------------------------------------------------


def test_attribute_findings_follow_the_policy(forest_report: AttributeInferenceReport, groups: Any) -> None:
    from garrison.assess.inference_rules import AttributeThresholds, attribute_findings
    from garrison.core.assets import Asset, AssetKind

    asset = Asset(kind=AssetKind.MODEL, locator="forest.joblib")
    found = attribute_findings(forest_report, asset)
    assert [f.rule.id for f in found] == ["GAR-AIN-001", "GAR-AIN-002"]
    assert "output-match" in found[0].message
    assert found[0].evidence[0].threshold == 0.1
    lenient = attribute_findings(
        forest_report, asset, AttributeThresholds(max_advantage=1.0, max_member_gap=1.0)
    )
    assert lenient == []
    members, non_members, aux = groups
    blind = members[0].copy()
    blind[:, SENSITIVE] = 0.0
    target = LogisticRegression(max_iter=200).fit(blind, members[1])
    quiet = run_attribute_inference(
        target, members, non_members, aux, sensitive=SENSITIVE, attacks="confidence"
    )
    assert attribute_findings(quiet, asset) == []
    with pytest.raises(ConfigError, match="max_advantage"):
        AttributeThresholds(max_advantage=1.5)
    with pytest.raises(ConfigError, match="unknown"):
        AttributeThresholds.from_mapping({"max_gap": 0.1})


def test_inversion_findings_follow_the_policy(inversion: InversionReport, digits: Any) -> None:
    from garrison.assess.inference_rules import InversionThresholds, inversion_findings
    from garrison.core.assets import Asset, AssetKind

    asset = Asset(kind=AssetKind.MODEL, locator="mlp.pt")
    (finding,) = inversion_findings(inversion, asset)
    assert finding.rule.id == "GAR-INV-001"
    assert f"{inversion.identified} of 10" in finding.message
    strict = inversion_findings(inversion, asset, InversionThresholds(min_identified=1.0))
    assert bool(strict) == (inversion.identification_rate == 1.0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    untrained = run_model_inversion(net, reference=(digits[0], digits[1]), image_shape=(8, 8), steps=60)
    assert inversion_findings(untrained, asset) == []
