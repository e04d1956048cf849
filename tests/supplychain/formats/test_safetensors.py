"""safetensors scanner: strict header checks."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import torch

from garrison.core.severity import Severity
from garrison.supplychain.safetensors import SafetensorsScanner
from tests.supplychain.formats.builders import rule_ids, safetensors_bytes, scan_bytes

SCANNER = SafetensorsScanner()


def _torch_file() -> bytes:
    """A valid file written by hand from real torch tensors, the way the reference writer lays it out."""
    tensors = {
        "embed.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "bias": torch.ones(4, dtype=torch.bfloat16),
    }
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, tensor in tensors.items():
        raw = (
            tensor.view(torch.uint8).numpy().tobytes()
            if tensor.dtype == torch.bfloat16
            else tensor.numpy().tobytes()
        )
        dtype = {torch.float32: "F32", torch.bfloat16: "BF16"}[tensor.dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(tensor.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    return safetensors_bytes(header, data)


def test_valid_torch_weights_are_clean(tmp_path: Path) -> None:
    assert scan_bytes(SCANNER, tmp_path, "model.safetensors", _torch_file()) == []


def _tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("header", "data", "rule"),
    [
        ({"a": _tensor("F32", [2], 0, 8), "b": _tensor("F32", [2], 4, 12)}, 12, "GAR-SFT-105"),
        ({"a": _tensor("F32", [2], 0, 8)}, 16, "GAR-SFT-106"),
        ({"a": _tensor("F32", [2], 0, 8), "b": _tensor("F32", [1], 12, 16)}, 16, "GAR-SFT-106"),
        ({"a": _tensor("F32", [1000, 1000], 0, 8)}, 8, "GAR-SFT-103"),
        ({"a": _tensor("Q9", [2], 0, 8)}, 8, "GAR-SFT-103"),
        ({"a": _tensor("F32", [-2], 0, 8)}, 8, "GAR-SFT-103"),
        ({"a": _tensor("F32", [2], 0, 2**40)}, 8, "GAR-SFT-104"),
        ({"a": _tensor("F32", [2], 8, 0)}, 8, "GAR-SFT-104"),
        ({"__metadata__": {"k": {"nested": 1}}, "a": _tensor("F32", [2], 0, 8)}, 8, "GAR-SFT-107"),
    ],
)
def test_header_violations(tmp_path: Path, header: dict[str, Any], data: int, rule: str) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "model.safetensors", safetensors_bytes(header, b"\x00" * data))
    assert rule in rule_ids(findings)


def test_duplicate_tensor_names_are_high(tmp_path: Path) -> None:
    raw = (
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    )
    findings = scan_bytes(SCANNER, tmp_path, "model.safetensors", safetensors_bytes(raw, b"\x00" * 8))
    assert "GAR-SFT-102" in rule_ids(findings, Severity.HIGH)


def test_non_strict_json_is_malformed(tmp_path: Path) -> None:
    raw = b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 8]}}'
    findings = scan_bytes(SCANNER, tmp_path, "model.safetensors", safetensors_bytes(raw, b"\x00" * 8))
    assert "GAR-SFT-101" in rule_ids(findings)


def test_deep_nesting_is_a_limit(tmp_path: Path) -> None:
    raw = b'{"__metadata__": ' + b"[" * 50 + b"]" * 50 + b"}"
    findings = scan_bytes(SCANNER, tmp_path, "model.safetensors", safetensors_bytes(raw, b""))
    assert "GAR-SFT-201" in rule_ids(findings)


def test_header_length_past_file(tmp_path: Path) -> None:
    data = struct.pack("<Q", 10_000) + b'{"a": 1}'
    findings = scan_bytes(SCANNER, tmp_path, "model.safetensors", data)
    assert "GAR-SFT-101" in rule_ids(findings)
