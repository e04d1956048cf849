"""Fixture builders for the Keras, ONNX, safetensors, GGUF and chat-template scanner tests.

Every file is built by hand from bytes; every "malicious" payload is harmless text that would
only touch a canary path, and nothing here is ever loaded by the library it imitates.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from garrison.core.assets import Asset, AssetKind
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.severity import Severity
from garrison.formats import HEAD_BYTES, identify

CANARY = "/tmp/garrison-canary-never-created"


def target_for(path: Path) -> FileTarget:
    """A FileTarget for a file on disk, identified the way the engine does."""
    data = path.read_bytes()
    ident = identify(path, data[:HEAD_BYTES], len(data))
    asset = Asset(kind=AssetKind.FILE, locator=path.name, size=len(data), format=ident.format)
    return FileTarget(
        path=path, asset=asset, head=data[:HEAD_BYTES], details=ident.details, malformed=ident.malformed
    )


def scan_bytes(detector: FileDetector, tmp_path: Path, name: str, data: bytes) -> list[Finding]:
    """Write ``data`` as ``name`` and scan it (only if the detector applies)."""
    path = tmp_path / name
    path.write_bytes(data)
    target = target_for(path)
    return list(detector.scan(target)) if detector.applies_to(target) else []


def rule_ids(findings: list[Finding], minimum: Severity = Severity.INFO) -> set[str]:
    """Rule ids of the findings at or above ``minimum``."""
    return {f.rule.id for f in findings if f.severity >= minimum}


# --- Keras -----------------------------------------------------------------------------------------


def lambda_code() -> str:
    """Base64 of marshalled bytecode of a harmless-by-construction lambda (never run here)."""
    payload = lambda x: __import__("os").system("touch " + CANARY) or x  # noqa: E731
    return base64.b64encode(marshal.dumps(payload.__code__)).decode("ascii")


def keras_layer(class_name: str, config: dict[str, Any], module: str = "keras.layers") -> dict[str, Any]:
    """A Keras 3 serialized layer."""
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def keras_model(*layers: dict[str, Any]) -> dict[str, Any]:
    """A Keras 3 Sequential model config."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": list(layers)},
        "registered_name": None,
    }


def dense(name: str = "dense") -> dict[str, Any]:
    """An ordinary Dense layer."""
    return keras_layer(
        "Dense",
        {
            "name": name,
            "units": 4,
            "activation": "relu",
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
        },
    )


def keras_zip(config: dict[str, Any] | str | bytes, *, extra: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """A ``.keras`` archive with ``config`` as config.json."""
    raw = config if isinstance(config, bytes) else (config if isinstance(config, str) else json.dumps(config))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        archive.writestr("config.json", raw)
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
        for name, data in extra:
            archive.writestr(name, data)
    return buf.getvalue()


def hdf5_with_config(config: dict[str, Any] | str, *, pad: int = 2048) -> bytes:
    """Bytes shaped like an h5py file: superblock, padding, then the config text in a heap."""
    text = config if isinstance(config, str) else json.dumps(config)
    superblock = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + b"\x00" * 40
    heap = b"GCOL" + b"\x01\x00\x00\x00" + struct.pack("<Q", 4096) + b"\x01\x00\x01\x00\x00\x00\x00\x00"
    heap += struct.pack("<Q", len(text))
    return (
        superblock
        + b"\x00" * pad
        + b"model_config\x00keras_version\x00"
        + heap
        + text.encode()
        + b"\x00" * 64
    )


# --- ONNX (a small protobuf writer) ------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_bytes(number: int, body: bytes | str) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def onnx_node(op_type: str, domain: str = "", attributes: bytes = b"") -> bytes:
    return (
        field_bytes(1, "x")
        + field_bytes(2, "y")
        + field_bytes(3, op_type.lower())
        + field_bytes(4, op_type)
        + (field_bytes(7, domain) if domain else b"")
        + attributes
    )


def onnx_tensor(name: str, external: dict[str, str] | None = None) -> bytes:
    body = field_int(1, 2) + field_int(2, 1) + field_bytes(8, name)
    if external is None:
        return body + field_bytes(9, struct.pack("<2f", 1.0, 2.0))
    for key, value in external.items():
        body += field_bytes(13, field_bytes(1, key) + field_bytes(2, value))
    return body + field_int(14, 1)


def onnx_model(
    nodes: list[bytes],
    *,
    initializers: Sequence[bytes] = (),
    opsets: tuple[str, ...] = ("",),
    functions: Sequence[bytes] = (),
) -> bytes:
    graph = b"".join(field_bytes(1, n) for n in nodes) + field_bytes(2, "g")
    graph += b"".join(field_bytes(5, t) for t in initializers)
    model = field_int(1, 8) + field_bytes(2, "garrison-tests")
    model += field_bytes(7, graph)
    model += b"".join(field_bytes(8, field_bytes(1, d) + field_int(2, 1 if d else 17)) for d in opsets)
    model += b"".join(field_bytes(25, f) for f in functions)
    return model


# --- safetensors and GGUF ------------------------------------------------------------------------------


def safetensors_bytes(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    if len(raw) % 256 == 0x80:
        # A length whose first byte is 0x80 is identified as a framed pickle by
        # garrison.formats.identify (reported to the lead); pad past it so these tests
        # exercise the safetensors scanner.
        raw += b" " * 8
    return struct.pack("<Q", len(raw)) + raw + data


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)


def gguf_bytes(
    kvs: list[bytes], tensors: Sequence[tuple[str, list[int], int, int]] = (), data: bytes = b""
) -> bytes:
    """A GGUF v3 file with raw KV entries and (name, dims, type, offset) tensors."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\x00" * (-len(out) % 32)
    return out + data


LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set ns.found = true -%}{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
    "{% generation %}{{ '' }}{% endgeneration %}"
)
CVE_2024_34359_TEMPLATE = (
    '{% for x in ().__class__.__base__.__subclasses__() %}{% if "warning" in x.__name__ %}'
    "{{x()._module.__builtins__['__import__']('os').popen(\"touch " + CANARY + '")}}'
    "{%endif%}{% endfor %}"
)
