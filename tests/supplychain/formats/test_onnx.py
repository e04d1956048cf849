"""ONNX scanner: custom domains, external-data paths on paper and on disk, one test per advisory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.core.severity import Severity
from garrison.supplychain.onnx import OnnxScanner
from tests.supplychain.formats.builders import (
    field_bytes,
    onnx_model,
    onnx_node,
    onnx_tensor,
    rule_ids,
    scan_bytes,
)

SCANNER = OnnxScanner()


def _external(location: str) -> bytes:
    return onnx_model(
        [onnx_node("Relu")], initializers=[onnx_tensor("w", {"location": location, "length": "8"})]
    )


def test_plain_graph_is_not_flagged(tmp_path: Path) -> None:
    model = onnx_model([onnx_node("MatMul"), onnx_node("Relu")], initializers=[onnx_tensor("w")])
    assert scan_bytes(SCANNER, tmp_path, "model.onnx", model) == []


def test_com_microsoft_contrib_ops_are_not_flagged(tmp_path: Path) -> None:
    model = onnx_model([onnx_node("FusedMatMul", "com.microsoft")], opsets=("", "com.microsoft"))
    assert scan_bytes(SCANNER, tmp_path, "model.onnx", model) == []


def test_custom_domain_is_flagged(tmp_path: Path) -> None:
    model = onnx_model([onnx_node("Relu"), onnx_node("Backdoor", "evil.ops")], opsets=("", "evil.ops"))
    findings = scan_bytes(SCANNER, tmp_path, "model.onnx", model)
    assert rule_ids(findings, Severity.HIGH) == {"GAR-ONNX-001"}
    assert "Backdoor" in findings[0].message


def test_custom_domain_inside_a_subgraph_is_found(tmp_path: Path) -> None:
    inner = field_bytes(1, onnx_node("Hidden", "evil.ops")) + field_bytes(2, "body")
    attribute = field_bytes(5, field_bytes(1, "then_branch") + field_bytes(6, inner))
    model = onnx_model([onnx_node("If", attributes=attribute)])
    assert "GAR-ONNX-001" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.onnx", model))


def test_model_local_function_is_not_a_custom_op(tmp_path: Path) -> None:
    function = field_bytes(1, "MyGelu") + field_bytes(10, "local.fn") + field_bytes(7, onnx_node("Erf"))
    model = onnx_model([onnx_node("MyGelu", "local.fn")], opsets=("", "local.fn"), functions=[function])
    assert scan_bytes(SCANNER, tmp_path, "model.onnx", model) == []


def test_opset_only_custom_domain_is_medium(tmp_path: Path) -> None:
    findings = scan_bytes(
        SCANNER, tmp_path, "model.onnx", onnx_model([onnx_node("Relu")], opsets=("", "x.y"))
    )
    assert [f.severity for f in findings] == [Severity.MEDIUM]


def test_cve_2022_25882_leading_dotdot(tmp_path: Path) -> None:
    """CVE-2022-25882: external_data location '../../etc/passwd' read as weights (onnx < 1.13)."""
    findings = scan_bytes(SCANNER, tmp_path, "model.onnx", _external("../../../etc/passwd"))
    assert "GAR-ONNX-102" in rule_ids(findings, Severity.HIGH)


def test_cve_2022_25882_absolute_path(tmp_path: Path) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "model.onnx", _external("/etc/passwd"))
    assert "GAR-ONNX-101" in rule_ids(findings, Severity.HIGH)


@pytest.mark.parametrize("location", ["C:\\Windows\\win.ini", "\\\\host\\share\\x", "~/.ssh/id_rsa"])
def test_windows_and_home_absolute_paths(tmp_path: Path, location: str) -> None:
    assert "GAR-ONNX-101" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.onnx", _external(location)))


def test_cve_2024_27318_prefix_then_dotdot(tmp_path: Path) -> None:
    """CVE-2024-27318: 'a/../../x' bypassed the first fix, which only checked a leading '../'."""
    findings = scan_bytes(SCANNER, tmp_path, "model.onnx", _external("weights/../../../etc/shadow"))
    assert "GAR-ONNX-102" in rule_ids(findings, Severity.HIGH)


def test_cve_2026_34447_symlinked_data_file(tmp_path: Path) -> None:
    """CVE-2026-34447: the external data file itself is a symlink to a file outside the model."""
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret!!")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(outside, model_dir / "weights.bin")
    findings = scan_bytes(SCANNER, model_dir, "model.onnx", _external("weights.bin"))
    assert "GAR-ONNX-103" in rule_ids(findings, Severity.HIGH)


def test_cve_2026_27489_symlinked_parent_directory(tmp_path: Path) -> None:
    """CVE-2026-27489: a parent directory of the data file is a symlink leaving the model dir."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(outside, model_dir / "data")
    findings = scan_bytes(SCANNER, model_dir, "model.onnx", _external("data/passwd"))
    assert "GAR-ONNX-103" in rule_ids(findings, Severity.HIGH)


def test_cve_2026_34446_hardlinked_data_file(tmp_path: Path) -> None:
    """CVE-2026-34446: a hard link to a sensitive file looks like a regular file."""
    original = tmp_path / "secret"
    original.write_bytes(b"12345678")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.link(original, model_dir / "weights.bin")
    findings = scan_bytes(SCANNER, model_dir, "model.onnx", _external("weights.bin"))
    assert "GAR-ONNX-104" in rule_ids(findings)


def test_inside_external_data_is_clean(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 8)
    assert scan_bytes(SCANNER, tmp_path, "model.onnx", _external("weights.bin")) == []


def test_missing_location_is_malformed(tmp_path: Path) -> None:
    model = onnx_model([onnx_node("Relu")], initializers=[onnx_tensor("w", {"offset": "0"})])
    assert "GAR-ONNX-105" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.onnx", model))


def test_truncated_model_is_malformed_but_scanned_up_to_the_break(tmp_path: Path) -> None:
    model = onnx_model([onnx_node("Evil", "evil.ops")], opsets=("", "evil.ops"))
    findings = scan_bytes(SCANNER, tmp_path, "model.onnx", model + b"\x3a\x7f")
    assert {"GAR-ONNX-105", "GAR-ONNX-001"} <= rule_ids(findings)
