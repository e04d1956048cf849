from __future__ import annotations

import dataclasses

import pytest

from garrison.core.errors import ConfigError, RegistryError
from garrison.core.rules import Rule, rule_markdown
from garrison.core.severity import Confidence, Severity


def make_rule(**changes: object) -> Rule:
    fields: dict[str, object] = {
        "id": "GAR-TST-001",
        "name": "test-thing-found",
        "title": "A test thing was found",
        "severity": Severity.MEDIUM,
        "description": "Describes the thing.",
        "remediation": "Remove the thing.",
        "cwe": ("CWE-502",),
        "owasp_ml": ("ML06",),
        "atlas": ("AML.T0010",),
        "controls": ("NIST-AI-RMF:MEASURE-2.7",),
    }
    fields.update(changes)
    return Rule(**fields)  # type: ignore[arg-type]


def test_severity_is_ordered_and_parses_names_in_any_case() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert Severity.parse("High") is Severity.HIGH
    assert Severity.parse(4) is Severity.CRITICAL
    assert Severity.CRITICAL.sarif_level == "error"
    assert Severity.MEDIUM.sarif_level == "warning"
    assert Severity.LOW.sarif_level == "note"
    assert Confidence.HIGH > Confidence.LOW


@pytest.mark.parametrize("bad", ["hgh", "", 7, True])
def test_bad_severity_names_the_choices(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        Severity.parse(bad)  # type: ignore[arg-type]
    assert "critical" in info.value.diagnostics()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"id": "GAR-T-1"}, "id must match"),
        ({"id": "XYZ-TST-001"}, "id must match"),
        ({"name": "Thing"}, "kebab-case"),
        ({"remediation": "  "}, "remediation is empty"),
        ({"cwe": ("502",)}, "not a CWE id"),
        ({"atlas": ("T0010",)}, "not a MITRE ATLAS"),
        ({"owasp_llm": ("LLM11",)}, "not an OWASP LLM"),
        ({"owasp_ml": ("ML11",)}, "not an OWASP ML"),
        ({"controls": ("SOC2:CC1",)}, "control"),
        ({"cwe": (), "owasp_ml": (), "atlas": ()}, "at least one reference"),
    ],
)
def test_malformed_rules_are_rejected_with_the_reason(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(RegistryError, match=complaint):
        make_rule(**change)


def test_references_resolve_to_titles_and_links() -> None:
    rule = make_rule(owasp_llm=("LLM01",))
    refs = {r.framework: r for r in rule.references()}
    assert refs["CWE"].url == "https://cwe.mitre.org/data/definitions/502.html"
    assert refs["OWASP-ML-2023"].title == "AI Supply Chain Attacks"
    assert refs["OWASP-LLM-2025"].title == "Prompt Injection"
    assert refs["MITRE-ATLAS"].url == "https://atlas.mitre.org/techniques/AML.T0010"
    assert refs["NIST-AI-RMF"].url is None
    assert rule.family == "TST"


def test_rule_documentation_is_generated_from_metadata() -> None:
    text = rule_markdown(make_rule(example="a pickle named .safetensors"))
    assert text.startswith("# GAR-TST-001 test-thing-found")
    for section in ("## What it does", "## Example", "## What to do", "## References"):
        assert section in text
    assert "Remove the thing." in text
    assert "[CWE-502](https://cwe.mitre.org/data/definitions/502.html)" in text
    assert "NIST-AI-RMF MEASURE-2.7" in text


def test_rules_are_frozen() -> None:
    rule = make_rule()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.severity = Severity.LOW  # type: ignore[misc]
