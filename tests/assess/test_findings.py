"""Evasion results judged against the policy: which findings, with what evidence, and stable fingerprints."""

from __future__ import annotations

import pytest

from garrison.assess.findings import (
    DETECTOR,
    MIN_BROKEN_SHARE,
    EvasionThresholds,
    evasion_findings,
    judged_epsilons,
)
from garrison.assess.results import AttackResult, EvasionReport, ModelInfo
from garrison.assess.rules import ADV_RULES, LOW_ROBUST_ACCURACY, SMALL_ADVERSARIAL_PERTURBATION
from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import ConfigError
from garrison.core.evidence import Metric
from garrison.core.rules import rule_markdown, rule_problems
from garrison.core.severity import Severity

ASSET = Asset(kind=AssetKind.MODEL, locator="models/net.pt")
MODEL = ModelInfo(
    name="Sequential",
    framework="torch",
    output_kind="logits",
    n_classes=10,
    input_shape=(64,),
    valid_range=(0.0, 1.0),
    valid_range_inferred=True,
    has_gradients=True,
)


def result(
    attack: str,
    epsilon: float | None,
    robust: float,
    *,
    norm: str = "linf",
    success: float = 0.5,
    median: float | None = 0.1,
    clean: float = 0.95,
) -> AttackResult:
    return AttackResult(
        attack=attack,
        norm=norm,
        epsilon=epsilon,
        samples=200,
        clean_accuracy=clean,
        robust_accuracy=robust,
        success_rate=success,
        median_perturbation=median,
        seconds=1.0,
        samples_per_second=200.0,
        queries_per_sample=11.0,
    )


def report(*results: AttackResult) -> EvasionReport:
    return EvasionReport(model=MODEL, results=results)


def metrics(finding: object) -> dict[str, Metric]:
    return {e.name: e for e in finding.evidence if isinstance(e, Metric)}  # type: ignore[attr-defined]


def test_rules_are_well_formed_and_mapped_to_owasp_ml01_and_atlas() -> None:
    assert [r.id for r in ADV_RULES] == ["GAR-ADV-001", "GAR-ADV-002"]
    for rule in ADV_RULES:
        assert rule_problems(rule) == []
        assert rule.owasp_ml == ("ML01",)
        assert "AML.T0043" in rule.atlas
        assert rule.family == "ADV"
        page = rule_markdown(rule)
        assert rule.id in page
        assert rule.title in page
    assert LOW_ROBUST_ACCURACY.severity is Severity.HIGH
    assert SMALL_ADVERSARIAL_PERTURBATION.severity is Severity.MEDIUM


def test_low_robust_accuracy_names_the_worst_attack_with_metric_evidence() -> None:
    rep = report(
        result("fgsm", 0.1, 0.40),
        result("pgd-10", 0.1, 0.12),
        result("fgsm", 0.3, 0.05),
        result("pgd-10", 0.3, 0.0),
    )
    found = evasion_findings(rep, ASSET)
    assert [f.rule.id for f in found] == ["GAR-ADV-001"]  # ε=0.3 is above the policy's 0.1: not judged
    f = found[0]
    assert f.detector == DETECTOR
    assert f.severity is Severity.HIGH
    assert "12.0% at ε=0.1 under pgd-10 (L∞)" in f.message
    assert "also fgsm (L∞) 40.0%" in f.message
    m = metrics(f)
    robust = m["robust_accuracy@eps=0.1"]
    assert (robust.value, robust.threshold, robust.comparison) == (0.12, 0.3, "<")
    assert m["clean_accuracy"].value == 0.95


def test_robust_accuracy_at_the_threshold_is_within_the_policy() -> None:
    assert evasion_findings(report(result("pgd-10", 0.1, 0.3)), ASSET) == []
    assert evasion_findings(report(result("pgd-10", 0.1, 0.29)), ASSET)[0].rule is LOW_ROBUST_ACCURACY


def test_smaller_epsilons_and_l2_results_are_judged_larger_ones_are_not() -> None:
    rep = report(
        result("pgd-10", 0.05, 0.2),
        result("pgd-l2-10", 0.1, 0.25, norm="l2"),
        result("pgd-10", 0.2, 0.0),
    )
    policy = EvasionThresholds()
    assert judged_epsilons(rep, policy) == (0.05, 0.1)
    found = evasion_findings(rep, ASSET, policy)
    assert [next(iter(metrics(f))) for f in found] == ["robust_accuracy@eps=0.05", "robust_accuracy@eps=0.1"]
    assert "pgd-l2-10 (L2)" in found[1].message
    strict = EvasionThresholds(epsilon=0.2, min_robust_accuracy=0.1)
    assert [next(iter(metrics(f))) for f in evasion_findings(rep, ASSET, strict)] == [
        "robust_accuracy@eps=0.2"
    ]
    assert evasion_findings(rep, ASSET, EvasionThresholds(epsilon=0.01)) == []


def test_clean_accuracy_below_the_minimum_is_said() -> None:
    found = evasion_findings(report(result("fgsm", 0.1, 0.1, clean=0.2)), ASSET)
    assert "clean accuracy is itself below the minimum" in found[0].message


@pytest.mark.parametrize(
    ("success", "median", "flagged"),
    [
        (1.0, 0.6, True),
        (MIN_BROKEN_SHARE, 0.99, True),
        (1.0, 1.0, False),  # at the threshold: within the policy
        (0.4, 0.2, False),  # broke too few samples to speak for the model
        (0.0, None, False),
    ],
)
def test_small_perturbation_of_minimal_attacks(success: float, median: float | None, flagged: bool) -> None:
    rep = report(result("cw-l2", None, 1 - success, norm="l2", success=success, median=median))
    found = evasion_findings(rep, ASSET)
    assert [f.rule.id for f in found] == (["GAR-ADV-002"] if flagged else [])
    if flagged:
        m = metrics(found[0])["median_l2[cw-l2]"]
        assert (m.value, m.threshold, m.comparison) == (median, 1.0, "<")
        assert found[0].severity is Severity.MEDIUM


def test_each_minimal_attack_has_its_own_finding_and_bounded_attacks_are_not_judged_by_adv_002() -> None:
    rep = report(
        result("cw-l2", None, 0.0, norm="l2", success=1.0, median=0.5),
        result("hopskipjump", None, 0.0, norm="l2", success=1.0, median=0.8),
        result("pgd-l2-10", 0.5, 0.6, norm="l2", success=1.0, median=0.1),
    )
    found = evasion_findings(rep, ASSET)
    assert [f.rule.id for f in found] == ["GAR-ADV-002", "GAR-ADV-002"]
    assert found[0].fingerprint != found[1].fingerprint
    assert "hopskipjump" in found[1].message


def test_fingerprints_survive_new_values_and_new_attacks() -> None:
    first = evasion_findings(report(result("pgd-10", 0.1, 0.12)), ASSET)[0]
    again = evasion_findings(
        report(result("fgsm", 0.1, 0.2), result("apgd-ce", 0.1, 0.05, clean=0.9)), ASSET
    )[0]
    assert first.fingerprint == again.fingerprint
    other = evasion_findings(report(result("pgd-10", 0.05, 0.12)), ASSET)[0]
    assert other.fingerprint != first.fingerprint


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epsilon": 0},
        {"epsilon": -0.1},
        {"min_robust_accuracy": 1.5},
        {"min_median_l2": -1},
        {"epsilon": float("nan")},
        {"min_robust_accuracy": True},
    ],
)
def test_bad_thresholds_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        EvasionThresholds(**kwargs)  # type: ignore[arg-type]


def test_thresholds_from_a_mapping_reject_unknown_keys() -> None:
    policy = EvasionThresholds.from_mapping({"epsilon": 0.03, "min_median_l2": 0.5})
    assert policy.to_dict() == {"epsilon": 0.03, "min_robust_accuracy": 0.3, "min_median_l2": 0.5}
    with pytest.raises(ConfigError, match="membership_auc"):
        EvasionThresholds.from_mapping({"membership_auc": 0.6})
