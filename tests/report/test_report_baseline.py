"""Baselines from JSON and SARIF reports, and applying them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError
from garrison.core.results import ScanReport
from garrison.report.baseline import apply_baseline, load_baseline
from garrison.report.json import render_json
from garrison.report.sarif import render_sarif

RENDERERS = {"json": render_json, "sarif": render_sarif}


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_round_trip_baselines_every_finding(sample_report: ScanReport, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"baseline.{fmt}"
    path.write_text(RENDERERS[fmt](sample_report), encoding="utf-8")
    fingerprints = load_baseline(path)
    expected = {f.fingerprint for f in (*sample_report.findings, *sample_report.baselined)}
    assert fingerprints == expected

    again = apply_baseline(sample_report, fingerprints)
    assert again.findings == ()
    assert {f.fingerprint for f in again.baselined} == expected
    assert len(again.baselined) == len(expected)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_only_new_findings_remain(sample_report: ScanReport, tmp_path: Path, fmt: str) -> None:
    old = replace(sample_report, findings=sample_report.findings[:3])
    path = tmp_path / f"old.{fmt}"
    path.write_text(RENDERERS[fmt](old), encoding="utf-8")
    result = apply_baseline(sample_report, load_baseline(path))
    assert result.findings == sample_report.findings[3:]
    assert result.baselined == sample_report.baselined + sample_report.findings[:3]
    assert result.run_id == sample_report.run_id
    assert apply_baseline(result, load_baseline(path)) == result


def test_apply_baseline_returns_a_copy(sample_report: ScanReport) -> None:
    result = apply_baseline(sample_report, [sample_report.findings[0].fingerprint])
    assert result is not sample_report
    assert sample_report.findings[0] in sample_report.findings
    assert result.findings == sample_report.findings[1:]


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_baseline(path)
    assert str(path) in info.value.message
    return info.value.message


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "nope.json")


def test_directory(tmp_path: Path) -> None:
    assert "cannot be read" in _error(tmp_path)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b""])
def test_not_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(content)
    assert "not JSON" in _error(path)


@pytest.mark.parametrize("data", [[], {"findings": []}, {"hello": 1}, "text", None])
def test_unknown_shape(tmp_path: Path, data: object) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "unknown shape" in _error(path)


def test_unsupported_major_version(sample_report: ScanReport, tmp_path: Path) -> None:
    data = json.loads(render_json(sample_report))
    data["schema_version"] = "2.0"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "schema version 2.0 is not supported" in _error(path)


def test_newer_minor_version_is_read(sample_report: ScanReport, tmp_path: Path) -> None:
    data = json.loads(render_json(sample_report))
    data["schema_version"] = "1.99"
    data["something_new"] = {"added": "in 1.99"}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert sample_report.findings[0].fingerprint in load_baseline(path)


def test_finding_without_fingerprint(sample_report: ScanReport, tmp_path: Path) -> None:
    data = json.loads(render_json(sample_report))
    del data["findings"][2]["fingerprint"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "findings[2] has no fingerprint" in _error(path)


def test_sarif_from_another_tool(sample_report: ScanReport, tmp_path: Path) -> None:
    log = json.loads(render_sarif(sample_report))
    log["runs"][0]["tool"]["driver"]["name"] = "OtherScanner"
    path = tmp_path / "b.sarif"
    path.write_text(json.dumps(log), encoding="utf-8")
    assert "'OtherScanner', not by Garrison" in _error(path)


def test_sarif_without_garrison_fingerprints(sample_report: ScanReport, tmp_path: Path) -> None:
    log = json.loads(render_sarif(sample_report))
    log["runs"][0]["results"][1]["partialFingerprints"] = {"primaryLocationLineHash": "abc"}
    path = tmp_path / "b.sarif"
    path.write_text(json.dumps(log), encoding="utf-8")
    assert "results[1] has no partialFingerprints" in _error(path)


def test_sarif_of_another_version(sample_report: ScanReport, tmp_path: Path) -> None:
    log = json.loads(render_sarif(sample_report))
    log["version"] = "2.0.0"
    path = tmp_path / "b.sarif"
    path.write_text(json.dumps(log), encoding="utf-8")
    assert "SARIF version '2.0.0' is not supported" in _error(path)


def test_empty_report_is_an_empty_baseline(empty_report: ScanReport, tmp_path: Path) -> None:
    for fmt, render in RENDERERS.items():
        path = tmp_path / f"b.{fmt}"
        path.write_text(render(empty_report), encoding="utf-8")
        assert load_baseline(path) == frozenset()
