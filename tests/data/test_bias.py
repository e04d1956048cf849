"""Group fairness metrics (``garrison.data.bias``), their findings and ``garrison data bias``.

The known-disparity dataset (group A: 100 rows, group B: 100 rows, group C: 10 rows):

- A: 50 positive labels; TP 40, FN 10, FP 10, TN 40 → selection 50/100 = 0.5, TPR 0.8, FPR 0.2
- B: 50 positive labels; TP 25, FN 25, FP 5, TN 45 → selection 30/100 = 0.3, TPR 0.5, FPR 0.1
- C: 10 rows, all predicted positive: under the 30-row minimum, left out

so demographic parity difference 0.5 − 0.3 = 0.2, ratio 0.3 / 0.5 = 0.6; equalized odds difference
max(0.8 − 0.5, 0.2 − 0.1) = 0.3, ratio min(0.5 / 0.8, 0.1 / 0.2) = 0.5.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from garrison.cli import data_bias
from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import ConfigError, GarrisonError, InputError, UsageError
from garrison.data.bias import bias_report
from garrison.data.bias_rules import BIAS_RULES, bias_findings
from garrison.data.bias_types import BiasThresholds

Row = tuple[str, str, str]


def block(group: str, tp: int, fn: int, fp: int, tn: int) -> list[Row]:
    """Rows (group, label, prediction) with the given confusion counts."""
    return (
        [(group, "1", "1")] * tp
        + [(group, "1", "0")] * fn
        + [(group, "0", "1")] * fp
        + [(group, "0", "0")] * tn
    )


def write_csv(path: Path, rows: list[Row], header: str = "group,label,pred") -> Path:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def disparate(tmp_path: Path) -> Path:
    rows = block("A", 40, 10, 10, 40) + block("B", 25, 25, 5, 45) + block("C", 5, 0, 5, 0)
    return write_csv(tmp_path / "preds.csv", rows)


def test_known_disparity_matches_hand_computation(disparate: Path) -> None:
    report = bias_report(disparate, protected=["group"], label="label", prediction="pred")
    (col,) = report.columns
    assert report.rows == 210
    assert [(g.value, g.rows, g.included) for g in col.groups] == [
        ("A", 100, True),
        ("B", 100, True),
        ("C", 10, False),
    ]
    assert col.dp_difference == Fraction(1, 5)
    assert col.dp_ratio == Fraction(3, 5)
    assert col.tpr_difference == Fraction(3, 10)
    assert col.fpr_difference == Fraction(1, 10)
    assert col.eo_difference == Fraction(3, 10)
    assert col.eo_ratio == Fraction(1, 2)
    assert any("'C' (10)" in n for n in col.notes)
    assert report.flagged


def test_known_disparity_matches_numpy(disparate: Path) -> None:
    """An independent computation of the same metrics straight from the arrays."""
    lines = disparate.read_text().splitlines()[1:]
    group = np.array([line.split(",")[0] for line in lines])
    y = np.array([int(line.split(",")[1]) for line in lines])
    p = np.array([int(line.split(",")[2]) for line in lines])
    keep = [g for g in np.unique(group) if (group == g).sum() >= 30]
    sel = [p[group == g].mean() for g in keep]
    tpr = [p[(group == g) & (y == 1)].mean() for g in keep]
    fpr = [p[(group == g) & (y == 0)].mean() for g in keep]
    (col,) = bias_report(disparate, protected=["group"], label="label", prediction="pred").columns
    assert float(col.dp_difference or 0) == pytest.approx(max(sel) - min(sel))
    assert float(col.dp_ratio or 0) == pytest.approx(min(sel) / max(sel))
    eo = max(max(tpr) - min(tpr), max(fpr) - min(fpr))
    assert float(col.eo_difference or 0) == pytest.approx(eo)
    assert float(col.eo_ratio or 0) == pytest.approx(min(min(tpr) / max(tpr), min(fpr) / max(fpr)))


def test_findings_carry_metrics_and_the_group_table(disparate: Path) -> None:
    report = bias_report(disparate, protected=["group"], label="label", prediction="pred")
    asset = Asset(kind=AssetKind.DATASET, locator="preds.csv")
    findings = bias_findings(report, asset)
    assert [f.rule.id for f in findings] == ["GAR-BIAS-001", "GAR-BIAS-002"]
    dp, eo = findings
    metrics = {e.name: e for e in dp.evidence if e.kind == "metric"}
    assert metrics["demographic_parity_difference"].value == pytest.approx(0.2)
    assert metrics["demographic_parity_difference"].threshold == 0.1
    assert metrics["demographic_parity_ratio"].comparison == "<"
    assert "'A' 100 rows, selection 0.500, TPR 0.800, FPR 0.200" in dp.message
    assert "too small" in dp.message
    assert dp.location.column == "group"
    assert "0.300" in eo.message
    assert {r.id for r in BIAS_RULES} == {"GAR-BIAS-001", "GAR-BIAS-002"}


def test_balanced_data_raises_no_finding(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fair.csv", block("A", 30, 10, 10, 50) + block("B", 30, 10, 10, 50))
    report = bias_report(path, protected=["group"], label="label", prediction="pred")
    (col,) = report.columns
    assert col.dp_difference == 0
    assert col.dp_ratio == 1
    assert col.eo_difference == 0
    assert not report.flagged
    assert bias_findings(report, Asset(kind=AssetKind.DATASET, locator="fair.csv")) == []


def test_label_only_measures_base_rates(tmp_path: Path) -> None:
    rows = [("A", "1", "")] * 60 + [("A", "0", "")] * 40 + [("B", "1", "")] * 30 + [("B", "0", "")] * 70
    path = write_csv(tmp_path / "train.csv", [(g, y, "") for g, y, _ in rows], header="group,label,x")
    report = bias_report(path, protected=["group"], label="label", prediction=None)
    (col,) = report.columns
    assert not report.on_prediction
    assert col.dp_difference == Fraction(3, 10)
    assert col.dp_ratio == Fraction(1, 2)
    assert col.eo_difference is None
    findings = bias_findings(report, Asset(kind=AssetKind.DATASET, locator="train.csv"))
    assert [f.rule.id for f in findings] == ["GAR-BIAS-001"]
    assert "of the label" in findings[0].message


def test_prediction_only_and_null_outcomes_skipped(tmp_path: Path) -> None:
    rows = [("A", "", "1")] * 40 + [("A", "", "0")] * 60 + [("B", "", "1")] * 40 + [("B", "", "0")] * 60
    path = tmp_path / "p.jsonl"
    lines = [json.dumps({"g": g, "p": int(p)}) for g, _, p in rows] + [json.dumps({"g": "A", "p": None})]
    path.write_text("\n".join(lines) + "\n")
    report = bias_report(path, protected=["g"], label=None, prediction="p")
    assert report.skipped_rows == 1
    assert report.columns[0].dp_difference == 0


def test_too_many_groups_makes_the_column_unsuitable(tmp_path: Path) -> None:
    rows = [(str(i), "1" if i % 2 else "0", "1") for i in range(100)]
    path = write_csv(tmp_path / "ids.csv", [(g, y, p) for g, y, p in rows])
    report = bias_report(path, protected=["group", "label"], label="label", prediction=None, max_groups=20)
    ids, labels = report.columns
    assert ids.unsuitable is not None
    assert "20" in ids.unsuitable
    assert ids.groups == ()
    assert labels.unsuitable is None
    assert len(labels.groups) == 2


def test_fewer_than_two_large_groups_gives_no_metric(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "one.csv", block("A", 20, 20, 20, 20) + block("B", 1, 1, 1, 1))
    (col,) = bias_report(path, protected=["group"], label="label", prediction="pred").columns
    assert col.dp_difference is None
    assert any("fewer than two groups" in n for n in col.notes)


@pytest.mark.parametrize(
    ("values", "positive", "rate_a"),
    [
        (("True", "false"), ("1", "true", "yes"), Fraction(1, 2)),
        (("YES", "no"), ("1", "true", "yes"), Fraction(1, 2)),
        (("1.0", "0.0"), ("1",), Fraction(1, 2)),
        (("approved", "denied"), ("Approved",), Fraction(1, 2)),
        (("approved", "denied"), "approved", Fraction(1, 2)),
        (("y", "n"), ("1",), Fraction(0)),
    ],
)
def test_positive_value_variants(
    tmp_path: Path, values: tuple[str, str], positive: str | tuple[str, ...], rate_a: Fraction
) -> None:
    yes, no = values
    rows = [("A", yes, "")] * 50 + [("A", no, "")] * 50 + [("B", no, "")] * 100
    path = write_csv(tmp_path / "v.csv", [(g, y, "x") for g, y, _ in rows])
    report = bias_report(path, protected=["group"], label="label", prediction=None, positive=positive)
    group_a = report.columns[0].groups[0]
    assert group_a.value == "A"
    assert group_a.selection(on_prediction=False) == rate_a


def test_threshold_edges_are_not_flagged(tmp_path: Path) -> None:
    """0.4 − 0.3 is 0.10000000000000003 in floats; exactly at the threshold is within the policy."""
    rows = [("A", "1", "x")] * 40 + [("A", "0", "x")] * 60 + [("B", "1", "x")] * 30 + [("B", "0", "x")] * 70
    path = write_csv(tmp_path / "edge.csv", rows)
    report = bias_report(path, protected=["group"], label="label", prediction=None)
    (col,) = report.columns
    assert col.dp_difference == Fraction(1, 10)
    assert not col.dp_flagged(BiasThresholds(max_dp_difference=0.1, min_dp_ratio=0.75))
    assert col.dp_flagged(BiasThresholds(max_dp_difference=0.0999, min_dp_ratio=0.75))
    # ratio 0.3 / 0.4 = 0.75 exactly: at the threshold, not below it
    assert not col.dp_flagged(BiasThresholds(max_dp_difference=0.2, min_dp_ratio=0.75))
    assert col.dp_flagged(BiasThresholds(max_dp_difference=0.2, min_dp_ratio=0.76))


def test_thresholds_from_a_mapping() -> None:
    t = BiasThresholds.from_mapping({"max_dp_difference": 0.05, "min_dp_ratio": 0.9})
    assert (t.max_dp_difference, t.min_dp_ratio, t.max_eo_difference) == (0.05, 0.9, 0.1)
    with pytest.raises(ConfigError, match="unknown"):
        BiasThresholds.from_mapping({"max_dp_diff": 0.1})
    with pytest.raises(ConfigError):
        BiasThresholds.from_mapping({"min_dp_ratio": 1.5})
    with pytest.raises(ConfigError):
        BiasThresholds.from_mapping({"min_dp_ratio": "0.8"})


def test_usage_and_input_errors(tmp_path: Path, disparate: Path) -> None:
    with pytest.raises(UsageError, match="'sex'"):
        bias_report(disparate, protected=["sex"], label="label", prediction=None)
    with pytest.raises(UsageError):
        bias_report(disparate, protected=["group"], label=None, prediction=None)
    with pytest.raises(UsageError):
        bias_report(disparate, protected=[], label="label", prediction=None)
    with pytest.raises(UsageError):
        bias_report(disparate, protected=["group"], label="label", prediction=None, positive=[])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError):
        bias_report(empty, protected=["group"], label="label", prediction=None)
    with pytest.raises(InputError):
        bias_report(tmp_path / "missing.csv", protected=["group"], label="label", prediction=None)


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("bias")(data_bias.bias)
    app.command("other")(lambda: None)  # two commands keep Typer from collapsing to a single one
    return app


def run(*args: str) -> tuple[int, str]:
    """Run the command the way ``garrison.cli.main.main`` does: a GarrisonError becomes its exit code."""
    result = CliRunner().invoke(make_app(), ["bias", *args])
    if isinstance(result.exception, GarrisonError):
        return result.exception.exit_code, result.stdout
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_console_and_exit_codes(workdir: Path, disparate: Path) -> None:
    base = [str(disparate), "--protected", "group", "--no-store"]
    code, out = run(*base, "--label", "label", "--prediction", "pred")
    assert code == 1
    assert "protected column 'group'" in out
    assert "demographic parity difference    0.200  FAIL" in out
    assert "equalized odds difference        0.300  FAIL" in out
    assert "FLAGGED" in out
    lenient = ["--max-dp-difference", "0.5", "--min-dp-ratio", "0.5", "--max-eo-difference", "0.3"]
    code, out = run(*base, "--label", "label", "--prediction", "pred", *lenient)
    assert code == 0
    assert "OK: within the policy" in out
    assert run(*base, "--label", "nope")[0] == 2
    assert run(*base)[0] == 2
    assert run(str(workdir / "missing.csv"), "--protected", "group", "--label", "label", "--no-store")[0] == 3


def test_cli_json_output(workdir: Path, disparate: Path) -> None:
    code, out = run(
        str(disparate), "--protected", "group", "--label", "label", "--prediction", "pred",
        "--format", "json", "--no-store",
    )  # fmt: skip
    assert code == 1
    body = json.loads(out)
    (col,) = body["columns"]
    assert col["demographic_parity_difference"] == pytest.approx(0.2)
    assert col["equalized_odds_difference"] == pytest.approx(0.3)
    assert col["demographic_parity_flagged"] is True
    assert [g["value"] for g in col["groups"]] == ["A", "B", "C"]
    assert col["groups"][0]["tpr"] == pytest.approx(0.8)
    rule_ids = sorted(f["rule"]["id"] for f in body["report"]["findings"])
    assert rule_ids == ["GAR-BIAS-001", "GAR-BIAS-002"]


def test_cli_sarif_to_file_and_store(workdir: Path, disparate: Path) -> None:
    code, _ = run(
        str(disparate), "--protected", "group", "--label", "label", "--prediction", "pred",
        "--positive", "1", "--format", "sarif", "-o", "out.sarif", "--db", str(workdir / "g.db"),
    )  # fmt: skip
    assert code == 1
    sarif = json.loads((workdir / "out.sarif").read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"GAR-BIAS-001", "GAR-BIAS-002"}
    assert (workdir / "g.db").exists()


# ---------------------------------------------------------------- the policy from garrison.toml


def _policy(workdir: Path, table: str) -> Path:
    path = workdir / "garrison.toml"
    path.write_text("[bias]\n" + table, encoding="utf-8")
    return path


def _json(*args: str) -> tuple[int, dict[str, object]]:
    code, out = run(*args, "--format", "json", "--no-store")
    return code, json.loads(out)


def test_thresholds_come_from_garrison_toml(workdir: Path, disparate: Path) -> None:
    _policy(workdir, "max-dp-difference = 0.5\nmin-dp-ratio = 0.5\nmax-eo-difference = 0.3\n")
    base = [str(disparate), "--protected", "group", "--label", "label", "--prediction", "pred"]
    code, body = _json(*base)
    assert code == 0
    assert body["thresholds"] == {"max_dp_difference": 0.5, "min_dp_ratio": 0.5, "max_eo_difference": 0.3}
    assert body["min_group_rows"] == 30  # not in the file: the built-in default
    code, out = run(*base, "--no-store")
    assert "demographic parity difference    0.200  pass (policy <= 0.5)" in out


def test_a_flag_beats_the_file_and_the_file_beats_the_default(
    workdir: Path, disparate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policy(workdir, "max-dp-difference = 0.5\nmin-dp-ratio = 0.5\nmax-eo-difference = 0.3\n")
    base = [str(disparate), "--protected", "group", "--label", "label", "--prediction", "pred"]
    code, body = _json(*base, "--max-dp-difference", "0.1")
    assert code == 1
    assert body["thresholds"] == {"max_dp_difference": 0.1, "min_dp_ratio": 0.5, "max_eo_difference": 0.3}
    monkeypatch.setenv("GARRISON_BIAS_MIN_DP_RATIO", "0.7")  # the environment sits between the two
    _, body = _json(*base)
    assert body["thresholds"]["min_dp_ratio"] == 0.7  # type: ignore[index]
    _, body = _json(*base, "--min-dp-ratio", "0.65")
    assert body["thresholds"]["min_dp_ratio"] == 0.65  # type: ignore[index]


def test_min_group_rows_from_the_file(workdir: Path, disparate: Path) -> None:
    _policy(workdir, "min-group-rows = 5\n")
    base = [str(disparate), "--protected", "group", "--label", "label", "--prediction", "pred"]
    _, body = _json(*base)
    assert body["min_group_rows"] == 5
    (col,) = body["columns"]  # type: ignore[misc]
    assert col["demographic_parity_difference"] == pytest.approx(0.7)  # group C (10 rows) now counts
    _, body = _json(*base, "--min-group-rows", "30")
    (col,) = body["columns"]  # type: ignore[misc]
    assert col["demographic_parity_difference"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("min-dp-ratio = 1.5\n", "bias-min-dp-ratio"),
        ("max-dp-difference = -0.1\n", "bias-max-dp-difference"),
        ('max-eo-difference = "lots"\n', "bias-max-eo-difference"),
        ("max-eo-difference = true\n", "bias-max-eo-difference"),
        ("min-group-rows = 0\n", "bias-min-group-rows"),
        ("min-group-rows = 2.5\n", "bias-min-group-rows"),
        ("max-dp-diff = 0.1\n", "bias-max-dp-diff"),
    ],
)
def test_invalid_policy_in_the_file_names_the_key_and_the_file(
    workdir: Path, disparate: Path, table: str, key: str
) -> None:
    config = _policy(workdir, table)
    result = CliRunner().invoke(
        make_app(), ["bias", str(disparate), "--protected", "group", "--label", "label", "--no-store"]
    )
    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 2
    assert key in result.exception.message
    assert str(config) in result.exception.message


def test_thresholds_from_settings_are_the_built_in_defaults_when_unset(tmp_path: Path) -> None:
    from garrison.core.config import load_settings

    settings = load_settings(env={}, cwd=tmp_path).settings
    assert BiasThresholds.from_settings(settings) == BiasThresholds()
    assert settings.bias_min_group_rows == 30
