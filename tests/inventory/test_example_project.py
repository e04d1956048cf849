"""The bundled example project: its files are what the docs say, and the demo finds the plant."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from garrison.core.config import SETTING_NAMES
from garrison.core.severity import Severity
from garrison.formats import HEAD_BYTES, identify
from tests.inventory.test_file_inventory import scan

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "project"

EXPECTED = {
    "data/iris.csv": ("csv", set()),
    "data/feedback.jsonl": ("jsonl", set()),
    "models/iris_classifier.joblib": ("joblib", {"GAR-FMT-001"}),
    "models/digits_mlp.pt": ("pytorch-zip", {"GAR-FMT-001"}),
    "models/digits_mlp.safetensors": ("safetensors", set()),
    "models/embeddings.safetensors": ("pickle", {"GAR-FMT-001", "GAR-FMT-101"}),
}


@pytest.mark.parametrize(("name", "fmt", "rules"), [(k, *v) for k, v in EXPECTED.items()])
def test_example_files(name: str, fmt: str, rules: set[str]) -> None:
    path = PROJECT / name
    data = path.read_bytes()
    found = identify(path, data[:HEAD_BYTES], len(data))
    assert found.format == fmt
    assert found.malformed is None
    assert {f.rule.id for f in scan(path, locator=name)} == rules


def test_the_planted_file_is_flagged_high() -> None:
    findings = scan(PROJECT / "models/embeddings.safetensors", locator="models/embeddings.safetensors")
    assert max(f.severity for f in findings) is Severity.HIGH


def test_example_project_is_small_and_its_config_is_valid() -> None:
    total = sum(p.stat().st_size for p in PROJECT.rglob("*") if p.is_file())
    assert total < 200 * 1024
    config = tomllib.loads((PROJECT / "garrison.toml").read_text(encoding="utf-8"))
    assert config["fail-on"] == "high"
    assert {key.replace("-", "_") for key in config} <= set(SETTING_NAMES)
