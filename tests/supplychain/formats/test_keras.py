"""Keras scanner: .keras archives and legacy HDF5, benign and malicious, one test per advisory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.core.severity import Severity
from garrison.supplychain.keras import KerasScanner
from tests.supplychain.formats.builders import (
    CANARY,
    dense,
    hdf5_with_config,
    keras_layer,
    keras_model,
    keras_zip,
    lambda_code,
    rule_ids,
    scan_bytes,
)

SCANNER = KerasScanner()


def _lambda_v3() -> dict[str, object]:
    function = {
        "class_name": "__lambda__",
        "config": {"code": lambda_code(), "defaults": None, "closure": None},
    }
    return keras_layer("Lambda", {"name": "lambda", "function": function, "arguments": {}})


def test_benign_dense_model_is_not_flagged(tmp_path: Path) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(dense(), dense("dense_1"))))
    assert findings == []


def test_benign_legacy_h5_is_not_flagged(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "d", "units": 2}}]},
    }
    findings = scan_bytes(SCANNER, tmp_path, "model.h5", hdf5_with_config(config))
    assert rule_ids(findings, Severity.HIGH) == set()


def test_cve_2024_3660_lambda_bytecode_is_critical(tmp_path: Path) -> None:
    """CVE-2024-3660: Keras < 2.13 runs Lambda bytecode from the config at load time."""
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(dense(), _lambda_v3())))
    lam = [f for f in findings if f.rule.id == "GAR-KRS-001"]
    assert lam
    assert lam[0].severity == Severity.CRITICAL
    assert "system" in lam[0].message
    assert "__import__" in lam[0].message
    assert not Path(CANARY).exists()


def test_cve_2025_9905_lambda_in_legacy_h5(tmp_path: Path) -> None:
    """CVE-2025-9905: safe_mode is ignored for .h5 files, so a legacy Lambda runs."""
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": [lambda_code(), None, None],
            "function_type": "lambda",
            "module": "__main__",
        },
    }
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [layer]}}
    findings = scan_bytes(SCANNER, tmp_path, "model.h5", hdf5_with_config(config, pad=5000))
    assert "GAR-KRS-001" in rule_ids(findings, Severity.HIGH)


def test_h5_config_with_escaped_keys_is_still_found(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "class_name": "Sequential",
            "config": {
                "layers": [
                    {
                        "class_name": "Lambda",
                        "config": {"function": [lambda_code(), None, None], "function_type": "lambda"},
                    }
                ]
            },
        }
    )
    text = text.replace('"class_name"', '"\\u0063lass_name"')
    findings = scan_bytes(SCANNER, tmp_path, "model.h5", hdf5_with_config(text))
    assert "GAR-KRS-001" in rule_ids(findings)


def test_cve_2025_1550_builtins_reference(tmp_path: Path) -> None:
    """CVE-2025-1550: config.json names an arbitrary module and function, run even in safe mode."""
    gadget = {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"}
    layer = keras_layer("Lambda", {"name": "l", "function": gadget, "arguments": {}})
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    hits = [f for f in findings if f.rule.id == "GAR-KRS-002"]
    assert hits
    assert hits[0].severity == Severity.CRITICAL
    assert "builtins.exec" in hits[0].message


def test_cve_2025_1550_subprocess_class_as_layer(tmp_path: Path) -> None:
    layer = {
        "module": "subprocess",
        "class_name": "Popen",
        "config": {"args": ["touch", CANARY]},
        "registered_name": None,
    }
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    assert "GAR-KRS-002" in rule_ids(findings, Severity.CRITICAL)


def test_cve_2025_9906_enable_unsafe_deserialization(tmp_path: Path) -> None:
    """CVE-2025-9906: the config calls keras.config.enable_unsafe_deserialization, then a Lambda."""
    gadget = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
        "registered_name": "function",
    }
    first = keras_layer("Lambda", {"name": "off", "function": gadget})
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(first, _lambda_v3())))
    ids = rule_ids(findings, Severity.CRITICAL)
    assert {"GAR-KRS-003", "GAR-KRS-001"} <= ids


def test_cve_2025_8747_get_file_gadget(tmp_path: Path) -> None:
    """CVE-2025-8747: keras.utils.get_file called from the config downloads and writes files."""
    gadget = {
        "module": "keras.src.utils.file_utils",
        "class_name": "function",
        "config": "get_file",
        "registered_name": "function",
    }
    layer = keras_layer(
        "Lambda",
        {"name": "dl", "function": gadget, "arguments": {"origin": "http://127.0.0.1/x", "fname": CANARY}},
    )
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    assert "GAR-KRS-003" in rule_ids(findings, Severity.CRITICAL)


def test_cve_2025_12058_string_lookup_vocabulary_path(tmp_path: Path) -> None:
    """CVE-2025-12058: StringLookup reads a vocabulary path (local file or URL) at load time."""
    layer = keras_layer("StringLookup", {"name": "lookup", "vocabulary": "/etc/passwd"})
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    assert "GAR-KRS-005" in rule_ids(findings, Severity.HIGH)


def test_cve_2026_1462_tfsm_layer(tmp_path: Path) -> None:
    """CVE-2026-1462: TFSMLayer loads an attacker-chosen SavedModel even in safe mode."""
    layer = keras_layer(
        "TFSMLayer", {"name": "tfsm", "filepath": "/tmp/evil_savedmodel", "call_endpoint": "serve"}
    )
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    assert "GAR-KRS-005" in rule_ids(findings, Severity.HIGH)


def test_cve_2026_12479_layer_name_traversal(tmp_path: Path) -> None:
    """CVE-2026-12479: a layer name with ../ escapes the weight store's directory."""
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(dense("../../../tmp/x"))))
    assert "GAR-KRS-102" in rule_ids(findings, Severity.HIGH)


def test_tfoplambda_io_op(tmp_path: Path) -> None:
    layer = {"class_name": "TFOpLambda", "config": {"name": "tf.io.write_file", "function": "io.write_file"}}
    findings = scan_bytes(
        SCANNER,
        tmp_path,
        "model.h5",
        hdf5_with_config({"class_name": "Functional", "config": {"layers": [layer]}}),
    )
    assert "GAR-KRS-005" in rule_ids(findings)


def test_custom_object_is_medium(tmp_path: Path) -> None:
    layer = {
        "module": "acme.layers",
        "class_name": "Fancy",
        "config": {"name": "f"},
        "registered_name": "acme>Fancy",
    }
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(keras_model(layer)))
    assert rule_ids(findings) == {"GAR-KRS-004"}
    assert rule_ids(findings, Severity.HIGH) == set()


@pytest.mark.parametrize(
    ("config", "rule"),
    [
        ('{"class_name": "Sequential", "class_name": "Functional"}', "GAR-KRS-101"),
        ("{not json", "GAR-KRS-101"),
        ('{"a": NaN}', "GAR-KRS-101"),
    ],
)
def test_malformed_configs(tmp_path: Path, config: str, rule: str) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", keras_zip(config))
    assert rule in rule_ids(findings)


def test_duplicate_config_member_is_reported_and_both_are_scanned(tmp_path: Path) -> None:
    evil = json.dumps(keras_model(_lambda_v3())).encode()
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = keras_zip(keras_model(dense()), extra=[("config.json", evil)])
    findings = scan_bytes(SCANNER, tmp_path, "model.keras", data)
    assert {"GAR-KRS-101", "GAR-KRS-001"} <= rule_ids(findings)
