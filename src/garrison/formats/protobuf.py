"""Protocol-buffer model files: ONNX ``ModelProto`` and TensorFlow ``SavedModel``.

Protobuf has no magic number, so identification walks the top-level fields (key, wire type,
length) and accepts the file only when every field is one the message type defines with the right
wire type and the walk lands exactly on the end of the file. Field bodies are skipped with seeks,
so a multi-gigabyte model costs a few dozen small reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from garrison.core.errors import GarrisonError
from garrison.formats.info import Identification
from garrison.formats.source import Source

MAX_FIELDS = 256
"""Most top-level fields walked."""

ONNX_FIELDS: dict[int, int] = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
"""``ModelProto`` field number -> wire type (0 varint, 2 length-delimited)."""

ONNX_NAMES = {1: "ir_version", 7: "graph", 8: "opset_import"}

SAVEDMODEL_FIELDS: dict[int, int] = {1: 0, 2: 2}
"""``SavedModel``: saved_model_schema_version (varint) and meta_graphs (repeated message)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    number: int
    wire: int
    value: int
    """The varint's value, or the body's length."""
    body: int
    """Offset of a length-delimited body."""


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift, index in enumerate(range(pos, min(pos + 10, len(buf)))):
        byte = buf[index]
        value |= (byte & 0x7F) << (7 * shift)
        if not byte & 0x80:
            return value, index + 1
    return None


def _walk(src: Source) -> tuple[list[_Field], str | None, bool]:
    """Top-level fields, why the walk stopped early (``None`` if it did not), and if it hit EOF."""
    fields: list[_Field] = []
    pos = 0
    while pos < src.size and len(fields) < MAX_FIELDS:
        buf = src.read_at(pos, 20)
        key = _varint(buf, 0)
        if key is None or key[0] >> 3 == 0:
            return fields, "bad field key", False
        number, wire, at = key[0] >> 3, key[0] & 7, key[1]
        if wire == 0:
            value = _varint(buf, at)
            if value is None:
                return fields, "bad varint", False
            fields.append(_Field(number=number, wire=0, value=value[0], body=0))
            pos += value[1]
        elif wire == 2:
            length = _varint(buf, at)
            if length is None:
                return fields, "bad length", False
            fields.append(_Field(number=number, wire=2, value=length[0], body=pos + length[1]))
            pos += length[1] + length[0]
            if pos > src.size:
                return fields, f"field {number} runs past the end of the file", False
        elif wire in (1, 5):
            fields.append(_Field(number=number, wire=wire, value=0, body=0))
            pos += at + (8 if wire == 1 else 4)
        else:
            return fields, f"invalid wire type {wire}", False
    return fields, None, pos == src.size


def _fits(fields: list[_Field], schema: dict[int, int]) -> bool:
    return all(schema.get(f.number) == f.wire for f in fields)


def sniff_protobuf(src: Source) -> Identification | None:
    """Identify an ONNX model or a TensorFlow ``saved_model.pb``; ``None`` if it is neither."""
    if not src.head.startswith(b"\x08") or src.size < 4:
        return None
    try:
        fields, stopped, at_end = _walk(src)
    except GarrisonError:
        return None
    if not fields or fields[0].number != 1 or fields[0].wire != 0:
        return None
    truncated = stopped is not None and stopped.startswith("field ")
    if stopped is not None and not truncated:
        return None
    if not at_end and not truncated and len(fields) < MAX_FIELDS:
        return None
    malformed = stopped if truncated else None
    numbers = {f.number for f in fields}
    if _fits(fields, SAVEDMODEL_FIELDS) and 2 in numbers and fields[0].value == 1:
        meta = next(f for f in fields if f.number == 2)
        try:
            first = _varint(src.read_at(meta.body, 10), 0)
        except GarrisonError:
            first = None
        if first is not None and 1 <= first[0] >> 3 <= 8 and first[0] & 7 == 2:
            count = sum(1 for f in fields if f.number == 2)
            return Identification(
                format="tf-savedmodel", details=(("meta-graphs", str(count)),), malformed=malformed
            )
    ir_version = fields[0].value
    if (
        _fits(fields, ONNX_FIELDS)
        and 1 <= ir_version <= 64
        and (7 in numbers or (truncated and len(fields) > 1))
    ):
        if malformed is not None:
            name = ONNX_NAMES.get(fields[-1].number)
            malformed = f"{malformed}" + (f" ({name})" if name else "")
        opsets = sum(1 for f in fields if f.number == 8)
        return Identification(
            format="onnx",
            details=(("ir_version", str(ir_version)), ("opset-imports", str(opsets))),
            malformed=malformed,
        )
    return None
