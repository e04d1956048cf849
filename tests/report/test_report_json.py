"""The JSON report: schema validity, content, determinism, and the schema's two copies."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from garrison.core.evidence import Metric
from garrison.core.results import REPORT_SCHEMA_VERSION, ScanReport
from garrison.report.json import render_json, report_schema, report_to_dict

REPO = Path(__file__).resolve().parents[2]
DOCS_SCHEMA = REPO / "docs" / "report-schema.json"
PACKAGE_SCHEMA = REPO / "src" / "garrison" / "report" / "schema" / "report.schema.json"
FORMAT_DOC = REPO / "docs" / "report-format.md"


def _validator() -> jsonschema.Draft202012Validator:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("name", ["sample_report", "empty_report", "error_report"])
def test_reports_validate_against_the_schema(name: str, request: pytest.FixtureRequest) -> None:
    report: ScanReport = request.getfixturevalue(name)
    errors = [e.message for e in _validator().iter_errors(json.loads(render_json(report)))]
    assert errors == []


def test_schema_rejects_what_it_should(sample_report: ScanReport) -> None:
    data = report_to_dict(sample_report)
    data["findings"][0]["severity"] = "catastrophic"
    data["surprise"] = True
    messages = [e.message for e in _validator().iter_errors(data)]
    assert any("catastrophic" in m for m in messages)
    assert any("surprise" in m for m in messages)


def test_docs_and_package_ship_the_same_schema() -> None:
    assert DOCS_SCHEMA.read_bytes() == PACKAGE_SCHEMA.read_bytes()


def test_schema_version_follows_core() -> None:
    assert REPORT_SCHEMA_VERSION.startswith("1.")
    assert jsonschema.Draft202012Validator(report_schema()["properties"]["schema_version"]).is_valid(
        REPORT_SCHEMA_VERSION
    )


def _properties(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found |= set(value)
            found |= _properties(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _properties(item)
    return found


def test_every_schema_field_is_documented() -> None:
    doc = FORMAT_DOC.read_text(encoding="utf-8")
    missing = sorted(p for p in _properties(report_schema()) if f"`{p}`" not in doc)
    assert missing == []


def test_top_level_shape_and_order(sample_report: ScanReport) -> None:
    data = json.loads(render_json(sample_report))
    assert list(data) == [
        "schema_version", "tool", "run", "summary", "assets", "findings", "rules", "errors", "skipped",
        "baselined",
    ]  # fmt: skip
    assert data["tool"] == {"name": "Garrison", "version": "0.1.0"}
    assert data["run"] == {
        "id": "run-2024-0001",
        "target": "./project",
        "started_at": "2024-05-01T12:00:00Z",
        "finished_at": "2024-05-01T12:00:03.250000Z",
        "complete": False,
    }
    assert data["summary"] == {
        "critical": 2, "high": 2, "medium": 1, "low": 1, "info": 1, "total": 7, "assets": 7,
        "errors": 1, "skipped": 7, "baselined": 1,
    }  # fmt: skip


def test_findings_carry_everything_a_consumer_needs(sample_report: ScanReport) -> None:
    data = report_to_dict(sample_report)
    by_rule = {f["rule"]["id"]: f for f in data["findings"]}
    pii = by_rule["GAR-PII-001"]
    assert pii["rule"] == {
        "id": "GAR-PII-001",
        "name": "email-address-in-dataset",
        "title": "Email addresses in a training dataset",
    }
    assert (pii["severity"], pii["confidence"], pii["detector"]) == ("low", "low", "pii-recognizer")
    assert pii["asset"]["locator"] == "data/customers.csv"
    assert pii["asset"]["digest"] == "sha256:" + "c3" * 32
    assert pii["location"] == {"row": 3, "column": "email"}
    assert pii["evidence"][0]["kind"] == "text"
    assert pii["remediation"].startswith("Remove or pseudonymise")
    assert {r["framework"] for r in pii["references"]} == {"CWE", "OWASP-LLM-2025", "EU-AI-Act"}
    kinds = {e["kind"] for f in data["findings"] for e in f["evidence"]}
    assert kinds == {"bytes", "opcode", "text", "metric", "observation", "exchange"}


def test_findings_are_in_core_order_and_rules_include_baselined(sample_report: ScanReport) -> None:
    data = report_to_dict(sample_report)
    assert [f["fingerprint"] for f in data["findings"]] == [
        f.fingerprint for f in sample_report.sorted_findings()
    ]
    assert [r["id"] for r in data["rules"]] == [r.id for r in sample_report.rules()]
    assert "GAR-SEC-001" in [r["id"] for r in data["rules"]]
    assert data["baselined"] == [sample_report.baselined[0].fingerprint]
    pickle_rule = next(r for r in data["rules"] if r["id"] == "GAR-PKL-001")
    assert pickle_rule["cwe"] == ["CWE-502"]
    assert pickle_rule["controls"] == ["NIST-AI-RMF:MEASURE-2.7"]
    assert pickle_rule["severity"] == "critical"


def test_output_is_deterministic_whatever_the_input_order(sample_report: ScanReport) -> None:
    shuffled = replace(
        sample_report,
        findings=tuple(reversed(sample_report.findings)),
        assets=tuple(reversed(sample_report.assets)),
        skipped=tuple(reversed(sample_report.skipped)),
    )
    text = render_json(sample_report)
    assert text == render_json(shuffled)
    assert text.endswith("}\n")
    assert text.isascii()


def test_non_finite_metric_values_become_null(sample_report: ScanReport) -> None:
    finding = sample_report.findings[-1]
    broken = replace(finding, evidence=(Metric(name="auc", value=math.nan, threshold=math.inf),))
    data = json.loads(render_json(replace(sample_report, findings=(broken,))))
    assert data["findings"][0]["evidence"][0] == {
        "kind": "metric", "name": "auc", "value": None, "threshold": None, "comparison": "",
    }  # fmt: skip
