from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import ClassVar

import pytest

from garrison.core.errors import ConfigError, RegistryError
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget, Registry
from garrison.core.rules import Rule
from tests.core.test_severity_rules import make_rule

RULE_A = make_rule(id="GAR-TST-001", name="first-test-rule")
RULE_B = make_rule(id="GAR-TST-002", name="second-test-rule")


class Alpha(FileDetector):
    name = "alpha"
    summary = "test"
    rules: ClassVar[tuple[Rule, ...]] = (RULE_A,)

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        yield from ()


class Beta(FileDetector):
    name = "beta"
    summary = "test"
    rules: ClassVar[tuple[Rule, ...]] = (RULE_B,)

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        yield from ()


def test_add_lists_detectors_and_rules() -> None:
    registry = Registry()
    registry.add(Beta)
    registry.add(Alpha)
    assert [d.name for d in registry.detectors()] == ["alpha", "beta"]
    assert [r.id for r in registry.rules()] == ["GAR-TST-001", "GAR-TST-002"]
    assert registry.owner("GAR-TST-002") == "beta"
    assert registry.rule("gar-tst-001") is RULE_A


def test_duplicates_are_rejected() -> None:
    registry = Registry()
    registry.add(Alpha)
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(Alpha)

    class Gamma(Alpha):
        name = "gamma"

    registry.add(Gamma)  # the same rule, emitted by two detectors, is shared
    assert registry.owner("GAR-TST-001") == "alpha"

    class Delta(Alpha):
        name = "delta"
        rules: ClassVar[tuple[Rule, ...]] = (make_rule(id="GAR-TST-001", name="clashing-test-rule"),)

    with pytest.raises(RegistryError, match="GAR-TST-001 of 'delta' is already registered by 'alpha'"):
        registry.add(Delta)


def test_malformed_detectors_are_rejected() -> None:
    class NoName(Alpha):
        name = "Not A Name"

    class NoRules(Alpha):
        name = "no-rules"
        rules: ClassVar[tuple[Rule, ...]] = ()

    registry = Registry()
    with pytest.raises(RegistryError, match="kebab-case"):
        registry.add(NoName)
    with pytest.raises(RegistryError, match="declares no rules"):
        registry.add(NoRules)
    with pytest.raises(RegistryError, match="not a Detector"):
        registry.add(int)  # type: ignore[arg-type]


def test_redirects_resolve_and_retired_ids_cannot_be_reused() -> None:
    registry = Registry()
    registry.add(Alpha)
    registry.add_redirect("GAR-TST-009", "GAR-TST-001")
    assert registry.rule("GAR-TST-009") is RULE_A
    assert registry.match_rules(["GAR-TST-009"]) == {"GAR-TST-001"}
    with pytest.raises(RegistryError, match="retired"):
        registry.add_rules([make_rule(id="GAR-TST-009", name="reused-test-rule")], owner="x")


def test_unknown_rule_suggests_close_ids() -> None:
    registry = Registry()
    registry.add(Alpha)
    with pytest.raises(ConfigError) as info:
        registry.rule("GAR-TST-011")
    assert "GAR-TST-001" in (info.value.hint or "")


def test_match_rules_by_family_prefix_and_id() -> None:
    registry = Registry()
    registry.add(Alpha)
    registry.add(Beta)
    assert registry.match_rules(["GAR-TST"]) == {"GAR-TST-001", "GAR-TST-002"}
    assert registry.match_rules(["gar-tst-002"]) == {"GAR-TST-002"}
    with pytest.raises(ConfigError, match="matches no rule"):
        registry.match_rules(["GAR-NOPE"])


class _FakeEntryPoint:
    def __init__(self, name: str, loaded: object) -> None:
        self.name, self.value, self._loaded = name, f"plugin:{name}", loaded

    def load(self) -> object:
        if isinstance(self._loaded, Exception):
            raise self._loaded
        return self._loaded


def test_entry_points_add_detectors_and_broken_plugins_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [_FakeEntryPoint("good", (Alpha, Beta)), _FakeEntryPoint("bad", ImportError("no module x"))]
    monkeypatch.setattr(
        metadata, "entry_points", lambda group: points if group == "garrison.detectors" else []
    )
    registry = Registry()
    registry.load_entry_points()
    assert [d.name for d in registry.detectors()] == ["alpha", "beta"]
    assert len(registry.problems) == 1
    assert "'bad'" in registry.problems[0]
    assert "no module x" in registry.problems[0]


def test_match_rules_by_range_inside_a_family() -> None:
    registry = Registry()
    registry.add_rules(
        [
            make_rule(id="GAR-TST-101", name="range-test-rule"),
            make_rule(id="GAR-TST-201", name="other-range-rule"),
        ],
        owner="x",
    )
    assert registry.match_rules(["GAR-TST-1"]) == {"GAR-TST-101"}
    with pytest.raises(ConfigError):
        registry.match_rules(["GAR-TS"])
