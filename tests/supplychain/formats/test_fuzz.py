"""Hypothesis fuzzing of the hand-written parsers: mutated files raise only GarrisonError."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.core.registry import FileDetector
from garrison.supplychain.formats_extra.marshal_names import MarshalFormatError, code_names
from garrison.supplychain.gguf import GgufScanner
from garrison.supplychain.keras import KerasScanner
from garrison.supplychain.onnx import OnnxScanner
from garrison.supplychain.safetensors import SafetensorsScanner
from garrison.supplychain.templates import analyse_template
from tests.supplychain.formats.builders import (
    CVE_2024_34359_TEMPLATE,
    LLAMA3_TEMPLATE,
    gguf_bytes,
    gguf_kv_string,
    gguf_string,
    keras_model,
    keras_zip,
    onnx_model,
    onnx_node,
    onnx_tensor,
    safetensors_bytes,
    scan_bytes,
)

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

GGUF_SEED = gguf_bytes(
    [
        gguf_kv_string("general.architecture", "llama"),
        gguf_string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 2)
        + gguf_string("a")
        + gguf_string("b"),
        gguf_kv_string("tokenizer.chat_template", LLAMA3_TEMPLATE),
    ],
    [("w", [4], 0, 0)],
    b"\x00" * 16,
)
SAFETENSORS_SEED = safetensors_bytes(
    {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
    b"\x00" * 8,
)
ONNX_SEED = onnx_model(
    [onnx_node("Relu"), onnx_node("X", "e.x")], initializers=[onnx_tensor("w", {"location": "w.bin"})]
)


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(seed)
    for index, value in edits:
        data[index % len(data)] = value
    return bytes(data[: max(cut, 1)])


def _survives(detector: FileDetector, tmp_path: Path, name: str, data: bytes) -> None:
    with contextlib.suppress(GarrisonError):
        scan_bytes(detector, tmp_path, name, data)


_EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


@_FUZZ
@given(edits=_EDITS, cut=st.integers(1, len(GGUF_SEED)))
def test_gguf_parser_on_mutated_bytes(tmp_path: Path, edits: list[tuple[int, int]], cut: int) -> None:
    _survives(GgufScanner(), tmp_path, "m.gguf", _mutate(GGUF_SEED, edits, cut))


@_FUZZ
@given(edits=_EDITS, cut=st.integers(1, len(SAFETENSORS_SEED)))
def test_safetensors_parser_on_mutated_bytes(tmp_path: Path, edits: list[tuple[int, int]], cut: int) -> None:
    _survives(SafetensorsScanner(), tmp_path, "m.safetensors", _mutate(SAFETENSORS_SEED, edits, cut))


@_FUZZ
@given(edits=_EDITS, cut=st.integers(1, len(ONNX_SEED)))
def test_onnx_parser_on_mutated_bytes(tmp_path: Path, edits: list[tuple[int, int]], cut: int) -> None:
    _survives(OnnxScanner(), tmp_path, "m.onnx", _mutate(ONNX_SEED, edits, cut))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_keras_archive_on_mutated_bytes(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    _survives(KerasScanner(), tmp_path, "m.keras", _mutate(keras_zip(keras_model()), edits, 10**6))


@_FUZZ
@given(data=st.binary(max_size=300))
def test_marshal_reader_never_crashes(data: bytes) -> None:
    with contextlib.suppress(MarshalFormatError):
        code_names(data)


@_FUZZ
@given(cut=st.integers(0, len(CVE_2024_34359_TEMPLATE)), text=st.text(max_size=40))
def test_template_analysis_never_raises(cut: int, text: str) -> None:
    analyse_template(CVE_2024_34359_TEMPLATE[:cut] + text)
