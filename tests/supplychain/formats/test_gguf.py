"""GGUF scanner: metadata parsing, tensor table checks and chat-template injection."""

from __future__ import annotations

import struct
from pathlib import Path

from garrison.core.severity import Severity
from garrison.supplychain.gguf import GgufScanner
from tests.supplychain.formats.builders import (
    CANARY,
    CHATML_TEMPLATE,
    CVE_2024_34359_TEMPLATE,
    LLAMA3_TEMPLATE,
    gguf_bytes,
    gguf_kv_string,
    gguf_string,
    rule_ids,
    scan_bytes,
)

SCANNER = GgufScanner()


def _normal_kvs(template: str) -> list[bytes]:
    tokens = gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3)
    tokens += gguf_string("<s>") + gguf_string("</s>") + gguf_string("hello")
    scores = (
        gguf_string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 0, -1)
    )
    return [
        gguf_kv_string("general.architecture", "llama"),
        gguf_string("general.alignment") + struct.pack("<II", 4, 32),
        gguf_string("llama.context_length") + struct.pack("<IQ", 10, 8192),
        tokens,
        scores,
        gguf_kv_string("tokenizer.chat_template", template),
    ]


def test_llama3_template_is_clean(tmp_path: Path) -> None:
    data = gguf_bytes(_normal_kvs(LLAMA3_TEMPLATE), [("tok_embd.weight", [4, 3], 0, 0)], b"\x00" * 48)
    assert scan_bytes(SCANNER, tmp_path, "model.gguf", data) == []


def test_chatml_template_with_namespace_is_clean(tmp_path: Path) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes(_normal_kvs(CHATML_TEMPLATE)))
    assert rule_ids(findings, Severity.HIGH) == set()


def test_cve_2024_34359_template_is_critical(tmp_path: Path) -> None:
    """CVE-2024-34359: llama-cpp-python rendered GGUF chat templates unsandboxed (RCE)."""
    findings = scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes(_normal_kvs(CVE_2024_34359_TEMPLATE)))
    injection = [f for f in findings if f.rule.id == "GAR-GGUF-001"]
    assert injection
    assert max(f.severity for f in injection) == Severity.CRITICAL
    assert any("__subclasses__" in f.message for f in injection)
    assert not Path(CANARY).exists()


def test_named_template_variant_is_checked(tmp_path: Path) -> None:
    kvs = [
        *_normal_kvs(LLAMA3_TEMPLATE),
        gguf_kv_string("tokenizer.chat_template.tool_use", "{{ cycler.__init__.__globals__ }}"),
    ]
    assert "GAR-GGUF-001" in rule_ids(
        scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes(kvs)), Severity.CRITICAL
    )


def test_duplicate_template_key_is_high(tmp_path: Path) -> None:
    kvs = [*_normal_kvs(LLAMA3_TEMPLATE), gguf_kv_string("tokenizer.chat_template", "{{ 1 }}")]
    assert "GAR-GGUF-101" in rule_ids(
        scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes(kvs)), Severity.HIGH
    )


def test_huge_array_count_is_a_limit_not_an_allocation(tmp_path: Path) -> None:
    kv = gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**60)
    assert rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes([kv]))) == {"GAR-GGUF-201"}


def test_string_past_end_is_malformed(tmp_path: Path) -> None:
    kv = gguf_string("general.name") + struct.pack("<IQ", 8, 1000) + b"short"
    assert rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes([kv]))) == {"GAR-GGUF-101"}


def test_unknown_value_type_is_malformed(tmp_path: Path) -> None:
    kv = gguf_string("general.name") + struct.pack("<I", 77)
    assert rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", gguf_bytes([kv]))) == {"GAR-GGUF-101"}


def test_cve_2026_33298_element_count_overflow(tmp_path: Path) -> None:
    """CVE-2026-33298 (GHSA-96jg-mvhq-q7q7): tensor dims whose product overflows 64 bits."""
    data = gguf_bytes(_normal_kvs(LLAMA3_TEMPLATE), [("w", [2**40, 2**40], 0, 0)], b"\x00" * 64)
    assert "GAR-GGUF-102" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", data), Severity.HIGH)


def test_too_many_dims_and_bad_type(tmp_path: Path) -> None:
    data = gguf_bytes([], [("w", [1, 1, 1, 1, 1], 0, 0)])
    assert "GAR-GGUF-102" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", data))
    data = gguf_bytes([], [("w", [1], 99, 0)], b"\x00" * 32)
    assert "GAR-GGUF-102" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", data))


def test_tensor_data_past_end(tmp_path: Path) -> None:
    data = gguf_bytes([], [("w", [1024], 0, 0)], b"\x00" * 16)
    assert "GAR-GGUF-102" in rule_ids(scan_bytes(SCANNER, tmp_path, "model.gguf", data))
