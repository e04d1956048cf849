"""The ``[assess]`` policy table: thresholds of ``garrison assess model`` from file, environment and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.core.config import SECTIONS, load_settings
from garrison.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_assess_defaults(tmp_path: Path) -> None:
    s = load_settings(env={}, cwd=tmp_path).settings
    assert (s.assess_epsilon, s.assess_min_robust_accuracy, s.assess_min_median_l2) == (0.1, 0.3, 1.0)
    assert "assess" in SECTIONS


def test_assess_policy_from_a_table_the_environment_and_a_flag(tmp_path: Path) -> None:
    config = write(tmp_path / "garrison.toml", "[assess]\nepsilon = 0.05\nmin-robust-accuracy = 0.5\n")
    loaded = load_settings(env={"GARRISON_ASSESS_MIN_MEDIAN_L2": "0.75"}, cwd=tmp_path)
    s = loaded.settings
    assert (s.assess_epsilon, s.assess_min_robust_accuracy, s.assess_min_median_l2) == (0.05, 0.5, 0.75)
    assert str(loaded.sources["assess_epsilon"]) == f"file ({config})"
    assert str(loaded.sources["assess_min_median_l2"]) == "env (GARRISON_ASSESS_MIN_MEDIAN_L2)"
    flagged = load_settings({"assess_min_robust_accuracy": 0.1}, env={}, cwd=tmp_path)
    assert flagged.settings.assess_min_robust_accuracy == 0.1
    assert str(flagged.sources["assess_min_robust_accuracy"]) == "flag (--assess-min-robust-accuracy)"


def test_flat_assess_key_and_pyproject_table(tmp_path: Path) -> None:
    write(tmp_path / "garrison.toml", "assess-epsilon = 0.3\n")
    assert load_settings(env={}, cwd=tmp_path).settings.assess_epsilon == 0.3
    other = tmp_path / "other"
    other.mkdir()
    write(other / "pyproject.toml", "[tool.garrison.assess]\nmin-median-l2 = 2.5\n")
    assert load_settings(env={}, cwd=other).settings.assess_min_median_l2 == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[assess]\nmin-robust-accuracy = 1.5\n", "'assess-min-robust-accuracy' from file"),
        ("[assess]\nepsilon = 0\n", "'assess-epsilon' from file"),
        ("[assess]\nmin-median-l2 = -1\n", "'assess-min-median-l2' from file"),
        ("[assess]\nepsilon = true\n", "not a boolean"),
        ("[assess]\nmin-membership-auc = 0.6\n", "unknown setting 'assess-min-membership-auc'"),
        ("assess = 0.1\n", "'assess' must be a table"),
    ],
)
def test_bad_assess_policy_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "garrison.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert message in info.value.message
    assert str(config) in info.value.message


def test_privacy_and_extraction_policy_keys(tmp_path: Path) -> None:
    from garrison.assess.extraction_rules import ExtractionThresholds
    from garrison.assess.privacy_rules import MembershipThresholds

    write(
        tmp_path / "garrison.toml",
        "[assess]\nmax-membership-auc = 0.7\nmax-extraction-fidelity = 0.8\nextraction-queries = 500\n",
    )
    s = load_settings(env={}, cwd=tmp_path).settings
    assert MembershipThresholds.from_settings(s).max_auc == 0.7
    assert ExtractionThresholds.from_settings(s) == ExtractionThresholds(max_fidelity=0.8, max_queries=500)
    write(tmp_path / "garrison.toml", "[assess]\nmax-membership-auc = 0.4\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert "'assess-max-membership-auc' from file" in info.value.message
