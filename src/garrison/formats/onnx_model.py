"""A bounded reader of the parts of an ONNX ``ModelProto`` that matter for security.

Shared by the supply-chain scanner (:mod:`garrison.supplychain.onnx`) and the checks that come before
an ONNX Runtime session is made (:mod:`garrison.assess.adapters_onnx`), so both read a model alike.

Hand-written protobuf decoding over a memory-mapped file: it visits the model's opset imports,
every node (in the main graph, in subgraphs held by attributes, in training graphs and in model
functions) and every tensor's external-data entries, and skips everything else (``raw_data`` of a
multi-gigabyte model costs one seek). Field numbers follow ``onnx/onnx.proto`` (IR version 10).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"})
"""Operator domains of the ONNX standard."""
RUNTIME_DOMAINS = frozenset(
    {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.microsoft.dml"}
)
"""Domains whose operators ship inside ONNX Runtime: anything else needs a native custom-op library."""

MAX_FIELDS = 20_000_000
"""Most protobuf fields visited in one model."""

MAX_DEPTH = 32
"""Deepest nesting of graphs (If/Loop/Scan bodies) followed."""

MAX_STRING = 4096
"""Longest string kept (domains, names, locations)."""


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class LimitError(ValueError):
    """A limit on fields or nesting was reached."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One node: its operator and where it sits."""

    domain: str
    op_type: str
    where: str


@dataclass(slots=True)
class ExternalTensor:
    """A tensor whose data lives in another file."""

    name: str
    where: str
    entries: dict[str, str] = field(default_factory=dict)
    repeated: list[str] = field(default_factory=list)
    """Keys given more than once."""
    location_flag: bool = False
    """Whether ``data_location`` says EXTERNAL."""


@dataclass(slots=True)
class OnnxModel:
    """What the scanner needs to know about a model."""

    opset_domains: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    functions: set[tuple[str, str]] = field(default_factory=set)
    """(domain, name) of every function defined in the model."""
    external: list[ExternalTensor] = field(default_factory=list)
    fields: int = 0


class _Walker:
    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.model = OnnxModel()

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value = 0
        for shift in range(10):
            if pos >= end:
                raise ProtoError("varint runs past the end of its message")
            byte = self.buf[pos]
            pos += 1
            value |= (byte & 0x7F) << (7 * shift)
            if not byte & 0x80:
                return value, pos
        raise ProtoError("varint is longer than 10 bytes")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """``(number, wire type, value or length, body offset)`` of each field in ``[start, end)``."""
        pos = start
        while pos < end:
            self.model.fields += 1
            if self.model.fields > MAX_FIELDS:
                raise LimitError(f"more than {MAX_FIELDS} protobuf fields")
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ProtoError(f"field number 0 at byte {pos}")
            if wire == 0:
                value, pos = self.varint(pos, end)
                yield number, wire, value, 0
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if pos + length > end:
                    raise ProtoError(f"field {number} at byte {pos} runs past the end of its message")
                yield number, wire, length, pos
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise ProtoError(f"fixed-width field {number} runs past the end of its message")
            else:
                raise ProtoError(f"unsupported wire type {wire} (field {number})")

    def text(self, start: int, length: int) -> str:
        raw = bytes(self.buf[start : start + min(length, MAX_STRING)])
        return raw.decode("utf-8", "replace")

    def model_proto(self) -> OnnxModel:
        for number, wire, length, body in self.fields(0, len(self.buf)):
            if wire != 2:
                continue
            if number == 7:
                self.graph(body, body + length, "graph", 0)
            elif number == 8:
                self.model.opset_domains.append(self.opset(body, body + length))
            elif number == 20:
                for sub, swire, slen, sbody in self.fields(body, body + length):
                    if swire == 2 and sub in (1, 2):
                        self.graph(sbody, sbody + slen, f"training_info.{sub}", 1)
            elif number == 25:
                self.function(body, body + length)
        return self.model

    def opset(self, start: int, end: int) -> str:
        domain = ""
        for number, wire, length, body in self.fields(start, end):
            if number == 1 and wire == 2:
                domain = self.text(body, length)
        return domain

    def function(self, start: int, end: int) -> None:
        name = domain = ""
        for number, wire, length, body in self.fields(start, end):
            if wire != 2:
                continue
            if number == 1:
                name = self.text(body, length)
            elif number == 10:
                domain = self.text(body, length)
            elif number == 7:
                self.node(body, body + length, f"function {name or '?'}", 1)
            elif number == 9:
                self.model.opset_domains.append(self.opset(body, body + length))
        self.model.functions.add((domain, name))

    def graph(self, start: int, end: int, where: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise LimitError(f"subgraphs nested more than {MAX_DEPTH} levels")
        for number, wire, length, body in self.fields(start, end):
            if wire != 2:
                continue
            if number == 1:
                self.node(body, body + length, where, depth)
            elif number == 5:
                self.tensor(body, body + length, f"{where} initializer")
            elif number == 15:
                self.sparse(body, body + length, f"{where} sparse initializer")

    def node(self, start: int, end: int, where: str, depth: int) -> None:
        op_type = domain = name = ""
        attributes: list[tuple[int, int]] = []
        for number, wire, length, body in self.fields(start, end):
            if wire != 2:
                continue
            if number == 4:
                op_type = self.text(body, length)
            elif number == 7:
                domain = self.text(body, length)
            elif number == 3:
                name = self.text(body, length)
            elif number == 5:
                attributes.append((body, body + length))
        label = f"{where} node {name or op_type or '?'}"
        self.model.nodes.append(Node(domain=domain, op_type=op_type, where=label))
        for a_start, a_end in attributes:
            self.attribute(a_start, a_end, label, depth)

    def attribute(self, start: int, end: int, where: str, depth: int) -> None:
        for number, wire, length, body in self.fields(start, end):
            if wire != 2:
                continue
            if number in (5, 10):
                self.tensor(body, body + length, f"{where} attribute tensor")
            elif number in (6, 11):
                self.graph(body, body + length, f"{where} subgraph", depth + 1)
            elif number in (22, 23):
                self.sparse(body, body + length, f"{where} attribute sparse tensor")

    def sparse(self, start: int, end: int, where: str) -> None:
        for number, wire, length, body in self.fields(start, end):
            if wire == 2 and number in (1, 2):
                self.tensor(body, body + length, where)

    def tensor(self, start: int, end: int, where: str) -> None:
        name = ""
        external = False
        entries: list[tuple[str, str]] = []
        for number, wire, length, body in self.fields(start, end):
            if number == 8 and wire == 2:
                name = self.text(body, length)
            elif number == 14 and wire == 0:
                external = length == 1
            elif number == 13 and wire == 2:
                entries.append(self.entry(body, body + length))
        if not (external or entries):
            return
        tensor = ExternalTensor(name=name, where=where, location_flag=external)
        for key, value in entries:
            if key in tensor.entries:
                tensor.repeated.append(key)
            tensor.entries[key] = value
        self.model.external.append(tensor)

    def entry(self, start: int, end: int) -> tuple[str, str]:
        key = value = ""
        for number, wire, length, body in self.fields(start, end):
            if wire == 2 and number == 1:
                key = self.text(body, length)
            elif wire == 2 and number == 2:
                value = self.text(body, length)
        return key, value


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadResult:
    """A parsed model and, if parsing stopped early, why."""

    model: OnnxModel
    """Everything read before parsing stopped."""
    problem: str | None = None
    """Why the protobuf is malformed, if it is."""
    limit: str | None = None
    """Which limit stopped the walk, if one did."""


def read_model(buf: Any) -> ReadResult:
    """Parse the ``ModelProto`` in ``buf`` (bytes or a memory map), keeping what precedes an error."""
    walker = _Walker(buf)
    try:
        walker.model_proto()
    except ProtoError as exc:
        return ReadResult(model=walker.model, problem=str(exc))
    except LimitError as exc:
        return ReadResult(model=walker.model, limit=str(exc))
    return ReadResult(model=walker.model)
