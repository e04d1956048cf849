from __future__ import annotations

from pathlib import Path

import pytest

from garrison.core.config import load_settings
from garrison.core.errors import ConfigError
from garrison.core.severity import Severity


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    loaded = load_settings(env={}, cwd=tmp_path)
    assert loaded.settings.fail_on is Severity.HIGH
    assert loaded.settings.store is True
    assert loaded.config_file is None
    assert all(s.kind == "default" for s in loaded.sources.values())
    assert loaded.settings.db_url(loaded.root).endswith(".garrison/garrison.db")


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    write(tmp_path / "garrison.toml", 'fail-on = "low"\nformat = "json"\nselect = ["GAR-FMT"]\n')
    env = {"GARRISON_FORMAT": "sarif", "GARRISON_SELECT": "GAR-SCAN, GAR-FMT-101"}
    loaded = load_settings({"select": ("GAR-FMT-001",)}, env=env, cwd=tmp_path)
    assert loaded.settings.fail_on is Severity.LOW
    assert loaded.sources["fail_on"].kind == "file"
    assert loaded.settings.format == "sarif"
    assert str(loaded.sources["format"]) == "env (GARRISON_FORMAT)"
    assert loaded.settings.select == ("GAR-FMT-001",)
    assert str(loaded.sources["select"]) == "flag (--select)"


def test_env_lists_are_comma_separated(tmp_path: Path) -> None:
    loaded = load_settings(env={"GARRISON_IGNORE": "GAR-FMT-001, GAR-SCAN"}, cwd=tmp_path)
    assert loaded.settings.ignore == ("GAR-FMT-001", "GAR-SCAN")


def test_pyproject_table_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.garrison]\nfail-on = "critical"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    loaded = load_settings(env={}, cwd=sub)
    assert loaded.settings.fail_on is Severity.CRITICAL
    assert loaded.root == tmp_path.resolve()


def test_garrison_toml_wins_over_pyproject_in_the_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.garrison]\nfail-on = "critical"\n')
    write(tmp_path / "garrison.toml", 'fail-on = "medium"\n')
    assert load_settings(env={}, cwd=tmp_path).settings.fail_on is Severity.MEDIUM


def test_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    write(tmp_path / "garrison.toml", 'db = "state/g.db"\nbaseline = "base.json"\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    loaded = load_settings(env={}, cwd=sub)
    assert loaded.settings.db_url(loaded.root) == f"sqlite:///{tmp_path.resolve()}/state/g.db"
    assert loaded.settings.baseline == tmp_path.resolve() / "base.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('fail-on = "hgh"\n', "fail-on"),
        ('colour = "red"\n', "unknown setting 'colour'"),
        ("fail-on = \n", "not valid TOML"),
        ("max-files = -3\n", "max-files"),
        ('format = "pdf"\n', "format"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "garrison.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert message in info.value.message
    if "TOML" in message or "unknown" in message:
        assert str(config) in info.value.message


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GARRISON_FAIL_ON"):
        load_settings(env={"GARRISON_FAIL_ON": "loud"}, cwd=tmp_path)


def test_explicit_config_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={}, cwd=tmp_path, config_file=tmp_path / "nope.toml")


def test_bias_policy_from_a_table_a_flat_key_and_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "garrison.toml", "[bias]\nmax-dp-difference = 0.05\nmin-group-rows = 50\n")
    loaded = load_settings(env={"GARRISON_BIAS_MIN_DP_RATIO": "0.9"}, cwd=tmp_path)
    s = loaded.settings
    assert (s.bias_max_dp_difference, s.bias_min_dp_ratio, s.bias_max_eo_difference) == (0.05, 0.9, 0.1)
    assert s.bias_min_group_rows == 50
    assert str(loaded.sources["bias_max_dp_difference"]) == f"file ({config})"
    assert str(loaded.sources["bias_min_dp_ratio"]) == "env (GARRISON_BIAS_MIN_DP_RATIO)"
    assert loaded.sources["bias_max_eo_difference"].kind == "default"
    flagged = load_settings({"bias_max_dp_difference": 0.2}, env={}, cwd=tmp_path).settings
    assert flagged.bias_max_dp_difference == 0.2
    write(tmp_path / "garrison.toml", "bias-max-eo-difference = 0.25\n")
    assert load_settings(env={}, cwd=tmp_path).settings.bias_max_eo_difference == 0.25


def test_bias_table_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.garrison.bias]\nmin-dp-ratio = 0.75\n")
    assert load_settings(env={}, cwd=tmp_path).settings.bias_min_dp_ratio == 0.75


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[bias]\nmin-dp-ratio = 1.5\n", "'bias-min-dp-ratio' from file"),
        ("[bias]\nmax-eo-difference = true\n", "not a boolean"),
        ("[bias]\ncolour = 1\n", "unknown setting 'bias-colour'"),
        ("bias = 0.1\n", "'bias' must be a table"),
    ],
)
def test_bad_bias_policy_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "garrison.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert message in info.value.message
    assert str(config) in info.value.message


def test_bad_bias_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GARRISON_BIAS_MAX_DP_DIFFERENCE"):
        load_settings(env={"GARRISON_BIAS_MAX_DP_DIFFERENCE": "nan"}, cwd=tmp_path)
