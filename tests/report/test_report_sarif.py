"""SARIF 2.1.0: validity against the official schema and what GitHub code scanning relies on."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from garrison.core.results import ScanReport
from garrison.core.rules import rule_markdown
from garrison.report.sarif import FINGERPRINT_KEY, render_sarif, report_to_sarif

_SCHEMA_NAME = "sarif-schema-2.1.0.json"


def _schema_path() -> Path | None:
    beside_repo = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "schemas" / _SCHEMA_NAME
    if beside_repo.is_file():
        return beside_repo
    configured = os.environ.get("GARRISON_SARIF_SCHEMA")
    if configured and Path(configured).is_file():
        return Path(configured)
    return None


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft7Validator:
    path = _schema_path()
    if path is None:
        message = f"{_SCHEMA_NAME} not found beside the repo (../shared) or in GARRISON_SARIF_SCHEMA"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has ../shared: validation must not be skipped there
        pytest.skip(message)
    return jsonschema.Draft7Validator(json.loads(path.read_text(encoding="utf-8")))


def _run(report: ScanReport) -> dict[str, Any]:
    log = json.loads(render_sarif(report))
    assert len(log["runs"]) == 1
    run: dict[str, Any] = log["runs"][0]
    return run


@pytest.mark.parametrize("name", ["sample_report", "error_report", "empty_report"])
def test_logs_validate_against_the_official_schema(
    name: str, request: pytest.FixtureRequest, sarif_validator: jsonschema.Draft7Validator
) -> None:
    report: ScanReport = request.getfixturevalue(name)
    errors = [f"{list(e.path)}: {e.message}" for e in sarif_validator.iter_errors(report_to_sarif(report))]
    assert errors == []


def test_the_validator_does_catch_a_broken_log(
    sample_report: ScanReport, sarif_validator: jsonschema.Draft7Validator
) -> None:
    log = report_to_sarif(sample_report)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert not sarif_validator.is_valid(log)


def test_header_and_driver(sample_report: ScanReport) -> None:
    log = json.loads(render_sarif(sample_report))
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "Garrison"
    assert driver["version"] == driver["semanticVersion"] == "0.1.0"
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [r.id for r in sample_report.rules()]


def test_rule_metadata_for_code_scanning(sample_report: ScanReport) -> None:
    rules = {r["id"]: r for r in _run(sample_report)["tool"]["driver"]["rules"]}
    pickle = rules["GAR-PKL-001"]
    assert pickle["name"] == "unsafe-pickle-global"
    assert pickle["shortDescription"]["text"] == "Pickle imports a callable that can run code"
    assert pickle["fullDescription"]["text"].startswith("The pickle stream")
    assert pickle["help"]["markdown"] == rule_markdown(
        next(r for r in sample_report.rules() if r.id == pickle["id"])
    )
    assert "What to do:" in pickle["help"]["text"]
    assert pickle["defaultConfiguration"] == {"level": "error"}
    assert pickle["helpUri"] == "https://cwe.mitre.org/data/definitions/502.html"
    props = pickle["properties"]
    assert props["security-severity"] == "9.5"
    assert props["precision"] == "high"
    for tag in ("security", "supply-chain", "external/cwe/cwe-502", "external/owasp-llm-2025/llm03"):
        assert tag in props["tags"]
    assert len(props["tags"]) == len(set(props["tags"]))
    assert rules["GAR-PII-001"]["defaultConfiguration"] == {"level": "note"}
    assert rules["GAR-PII-001"]["properties"]["precision"] == "low"


def test_results_point_at_their_rule_and_artifact(sample_report: ScanReport) -> None:
    run = _run(sample_report)
    rules, artifacts = run["tool"]["driver"]["rules"], run["artifacts"]
    assert len(run["results"]) == len(sample_report.findings) + len(sample_report.baselined)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert artifacts[location["index"]]["location"]["uri"] == location["uri"]
        assert result["partialFingerprints"][FINGERPRINT_KEY]
    assert {r["partialFingerprints"][FINGERPRINT_KEY] for r in run["results"]} == {
        f.fingerprint for f in (*sample_report.findings, *sample_report.baselined)
    }


def _result(run: dict[str, Any], rule_id: str, uri: str) -> dict[str, Any]:
    return next(
        r
        for r in run["results"]
        if r["ruleId"] == rule_id and r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri
    )


def test_offsets_become_byte_regions_in_the_file(sample_report: ScanReport) -> None:
    run = _run(sample_report)
    result = _result(run, "GAR-ARC-201", "models/bundle.pt")
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    assert physical["region"] == {"byteOffset": 4096, "byteLength": 30}
    assert result["level"] == "error"
    assert result["properties"] == {
        "severity": "high",
        "confidence": "high",
        "detector": "archive-scanner",
        "location": {"offset": 4096},
    }
    assert _result(run, "GAR-PKL-001", "models/evil.pkl")["locations"][0]["physicalLocation"]["region"] == {
        "byteOffset": 26
    }


def test_archive_members_are_logical_locations_without_a_region(sample_report: ScanReport) -> None:
    location = _result(_run(sample_report), "GAR-PKL-001", "models/bundle.pt")["locations"][0]
    assert "region" not in location["physicalLocation"]
    assert location["logicalLocations"] == [
        {"name": "archive/data.pkl", "fullyQualifiedName": "models/bundle.pt!archive/data.pkl"}
    ]
    assert location["message"]["text"] == "member archive/data.pkl, offset 112 (0x70)"


def test_endpoints_keep_their_url(sample_report: ScanReport) -> None:
    result = _result(_run(sample_report), "GAR-INJ-001", "https://llm.example.test/v1/chat")
    assert "uriBaseId" not in result["locations"][0]["physicalLocation"]["artifactLocation"]


def test_artifacts_carry_size_and_sha256(sample_report: ScanReport) -> None:
    artifacts = {a["location"]["uri"]: a for a in _run(sample_report)["artifacts"]}
    assert set(artifacts) == {a.locator for a in sample_report.assets}
    bundle = artifacts["models/bundle.pt"]
    assert bundle["hashes"] == {"sha-256": "b2" * 32}
    assert bundle["length"] == 48_213_004
    assert bundle["properties"] == {"kind": "model", "format": "pytorch-zip"}
    assert "hashes" not in artifacts["https://llm.example.test/v1/chat"]


def test_baselined_findings_are_externally_suppressed(sample_report: ScanReport) -> None:
    results = _run(sample_report)["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert [r["partialFingerprints"][FINGERPRINT_KEY] for r in suppressed] == [
        sample_report.baselined[0].fingerprint
    ]
    assert suppressed[0]["suppressions"][0]["kind"] == "external"
    assert results[-1] == suppressed[0]  # baselined results come after the open ones


def test_errors_make_the_invocation_unsuccessful(error_report: ScanReport) -> None:
    invocation = _run(error_report)["invocations"][0]
    assert invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["error", "error"]
    assert notes[0]["message"]["text"] == "models/broken.gguf (gguf-scanner): header truncated"
    assert notes[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/unreadable.bin"


def test_empty_run_is_a_successful_run_without_results(empty_report: ScanReport) -> None:
    run = _run(empty_report)
    assert run["results"] == []
    assert run["tool"]["driver"]["rules"] == []
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["invocations"][0]["toolExecutionNotifications"] == []
    assert "%SRCROOT%" in run["originalUriBaseIds"]


def test_skipped_items_are_listed_on_the_invocation(sample_report: ScanReport) -> None:
    skipped = _run(sample_report)["invocations"][0]["properties"]["skipped"]
    assert len(skipped) == 7
    assert {"locator": "node_modules", "reason": "excluded by --exclude"} in skipped


def test_output_is_deterministic(sample_report: ScanReport) -> None:
    shuffled = replace(sample_report, findings=tuple(reversed(sample_report.findings)))
    assert render_sarif(sample_report) == render_sarif(shuffled)
