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
