"""The GGUF scanner: header, metadata and tensor table parsed by hand, chat templates analysed.

GGUF is ``GGUF``, a version, tensor and metadata counts, metadata key/value pairs (thirteen value
types, arrays included), a tensor table and aligned tensor data. The file is memory-mapped and
walked with every count and length checked against the bytes that remain and against limits, so
a header that claims 2^60 array elements costs nothing. Fixed-size arrays are skipped by
arithmetic; only chat templates (``tokenizer.chat_template`` and ``tokenizer.chat_template.*``)
and ``general.alignment`` are kept. Templates go to :func:`garrison.supplychain.templates.analyse_template`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from garrison.core.evidence import ByteRange, Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.supplychain.formats_extra.common import file_name, finding, mapped, short
from garrison.supplychain.formats_extra.rules_tpl import (
    GGUF_LIMIT,
    GGUF_MALFORMED,
    GGUF_RULES,
    GGUF_TEMPLATE_INJECTION,
    GGUF_TEMPLATE_SUSPICIOUS,
    GGUF_TENSOR_TABLE,
)
from garrison.supplychain.templates import template_findings

MAX_KV = 1_000_000
MAX_TENSORS = 10_000_000
MAX_STRING = 64 * 2**20
MAX_ARRAY = 64 * 2**20
MAX_DIMS = 4
MAX_TABLE_FINDINGS = 20

_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""Size in bytes of each fixed-size GGUF value type."""
_STRING, _ARRAY = 8, 9
_SIMPLE_TYPE_BYTES = {0: 4, 1: 2, 24: 1, 25: 2, 26: 4, 27: 8, 28: 8, 30: 2}
"""Bytes per element of unquantised ggml types (F32, F16, I8...I64, F64, BF16)."""
_REMOVED_TYPES = frozenset({4, 5, 31, 32, 33, 36, 37, 38})
_TYPE_COUNT = 40


class GgufError(ValueError):
    """The file breaks the format or a limit."""

    def __init__(self, rule: Rule, message: str, offset: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.offset = offset


@dataclass(slots=True)
class GgufInfo:
    """What the scanner keeps from a GGUF file."""

    version: int = 0
    templates: list[tuple[str, str, int]] = field(default_factory=list)
    """(key, template, offset) of every chat template."""
    duplicates: list[str] = field(default_factory=list)
    table_issues: list[tuple[str, int]] = field(default_factory=list)
    alignment: int = 32


class _Reader:
    def __init__(self, buf: Any) -> None:
        self.buf, self.pos, self.end = buf, 0, len(buf)
        self.order, self.wide = "<", True

    def need(self, count: int, what: str) -> None:
        if count < 0 or self.pos + count > self.end:
            raise GgufError(GGUF_MALFORMED, f"{what} runs past the end of the file", self.pos)

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize(fmt)
        self.need(size, what)
        value = struct.unpack_from(self.order + fmt, self.buf, self.pos)[0]
        self.pos += size
        return int(value)

    def count(self, what: str) -> int:
        return self.unpack("Q" if self.wide else "I", what)

    def string(self, what: str, keep: bool) -> bytes:
        at = self.pos
        length = self.count(f"length of {what}")
        if length > MAX_STRING:
            raise GgufError(GGUF_LIMIT, f"{what} declares {length} bytes (limit {MAX_STRING})", at)
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length]) if keep else b""
        self.pos += length
        return raw

    def skip_value(self, kind: int, what: str, *, in_array: bool = False) -> None:
        if kind in _FIXED:
            self.need(_FIXED[kind], what)
            self.pos += _FIXED[kind]
        elif kind == _STRING:
            self.string(what, keep=False)
        elif kind == _ARRAY and not in_array:
            at = self.pos
            inner = self.unpack("I", f"element type of {what}")
            count = self.count(f"element count of {what}")
            if count > MAX_ARRAY:
                raise GgufError(GGUF_LIMIT, f"{what} declares {count} elements (limit {MAX_ARRAY})", at)
            if inner in _FIXED:
                self.need(count * _FIXED[inner], what)
                self.pos += count * _FIXED[inner]
            elif inner == _STRING:
                self.need(count * (8 if self.wide else 4), what)
                for _ in range(count):
                    self.string(f"element of {what}", keep=False)
            else:
                raise GgufError(GGUF_MALFORMED, f"{what} is an array of unsupported type {inner}", at)
        else:
            raise GgufError(GGUF_MALFORMED, f"{what} has unknown value type {kind}", self.pos)


def parse_gguf(buf: Any) -> GgufInfo:
    """Parse a GGUF file's header, metadata and tensor table; raise :class:`GgufError` on a problem."""
    reader, info = _Reader(buf), GgufInfo()
    if bytes(buf[:4]) != b"GGUF":
        raise GgufError(GGUF_MALFORMED, "the file does not start with GGUF", 0)
    reader.pos = 4
    version = reader.unpack("I", "version")
    if version > 0xFFFF:
        reader.order, reader.pos = ">", 4
        version = reader.unpack("I", "version")
    if version not in (1, 2, 3):
        raise GgufError(GGUF_MALFORMED, f"unknown GGUF version {version}", 4)
    info.version, reader.wide = version, version != 1
    n_tensors, n_kv = reader.count("tensor count"), reader.count("metadata count")
    if n_kv > MAX_KV or n_tensors > MAX_TENSORS:
        raise GgufError(GGUF_LIMIT, f"header declares {n_tensors} tensors and {n_kv} metadata keys", 8)
    seen: set[str] = set()
    for index in range(n_kv):
        at = reader.pos
        try:
            key = reader.string(f"key {index}", keep=True).decode("utf-8")
        except UnicodeDecodeError:
            raise GgufError(GGUF_MALFORMED, f"metadata key {index} is not UTF-8", at) from None
        if key in seen:
            info.duplicates.append(key)
        seen.add(key)
        kind = reader.unpack("I", f"type of {short(key, 60)!r}")
        is_template = key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")
        if kind == _STRING and is_template:
            value_at = reader.pos
            try:
                info.templates.append((key, reader.string(key, keep=True).decode("utf-8"), value_at))
            except UnicodeDecodeError:
                raise GgufError(GGUF_MALFORMED, f"{short(key, 60)!r} is not UTF-8", value_at) from None
        elif kind == 4 and key == "general.alignment":
            info.alignment = reader.unpack("I", key)
        else:
            reader.skip_value(kind, repr(short(key, 60)))
    _tensor_table(reader, info, n_tensors)
    return info


def _tensor_table(reader: _Reader, info: GgufInfo, n_tensors: int) -> None:
    if info.alignment <= 0 or info.alignment & (info.alignment - 1):
        info.table_issues.append((f"general.alignment {info.alignment} is not a power of two", 0))
        info.alignment = 32
    placed: list[tuple[int, int, str]] = []
    for index in range(n_tensors):
        at = reader.pos
        name = reader.string(f"tensor name {index}", keep=True).decode("utf-8", "replace")
        label = short(name, 60) or str(index)
        n_dims = reader.unpack("I", f"dimension count of {label!r}")
        if n_dims > MAX_DIMS:
            raise GgufError(
                GGUF_TENSOR_TABLE, f"tensor {label!r} has {n_dims} dimensions (ggml supports 4)", at
            )
        dims = [reader.unpack("Q" if reader.wide else "I", f"dimensions of {label!r}") for _ in range(n_dims)]
        ggml_type = reader.unpack("I", f"type of {label!r}")
        offset = reader.unpack("Q", f"offset of {label!r}")
        elements = 1
        for dim in dims:
            elements *= dim
        if elements >= 2**63:
            info.table_issues.append(
                (f"tensor {label!r} has {elements} elements, which overflows 64 bits", at)
            )
        if ggml_type >= _TYPE_COUNT or ggml_type in _REMOVED_TYPES:
            info.table_issues.append((f"tensor {label!r} has unknown ggml type {ggml_type}", at))
        if offset % info.alignment:
            info.table_issues.append(
                (f"tensor {label!r} data offset {offset} is not {info.alignment}-aligned", at)
            )
        placed.append((offset, elements * _SIMPLE_TYPE_BYTES.get(ggml_type, 0), label))
    data_start = -(-reader.pos // info.alignment) * info.alignment
    for offset, size, label in placed:
        if data_start + offset + size > reader.end:
            info.table_issues.append(
                (f"tensor {label!r} data lies past the end of the file", data_start + offset)
            )


class GgufScanner(FileDetector):
    """Parses GGUF files within limits and analyses their chat templates without rendering them.

    Emits GAR-GGUF-001 for template injection, 002 for injection building blocks, 101 for
    malformed metadata, 102 for impossible tensor tables and 201 for limits.
    """

    name: ClassVar[str] = "gguf-model"
    summary: ClassVar[str] = "Parses GGUF metadata and tensor tables and finds chat-template injection."
    rules: ClassVar[tuple[Rule, ...]] = GGUF_RULES
    formats: ClassVar[frozenset[str]] = frozenset({"gguf"})

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one GGUF file."""
        name = file_name(target)
        with mapped(target.path) as view:
            try:
                info = parse_gguf(view)
            except GgufError as exc:
                yield finding(
                    self.name,
                    exc.rule,
                    target,
                    f"{name}: {exc}.",
                    (ByteRange(start=exc.offset, end=exc.offset + 1, description=str(exc)),),
                    location=Location(offset=exc.offset),
                )
                return
        for key in sorted(set(info.duplicates)):
            yield finding(
                self.name,
                GGUF_MALFORMED,
                target,
                f"{name}: metadata key {short(key, 80)!r} appears more than once; "
                "loaders disagree on which wins.",
                (Observation(name="duplicate-key", actual=short(key, 80)),),
                severity=Severity.HIGH if key.startswith("tokenizer.chat_template") else None,
            )
        for message, offset in info.table_issues[:MAX_TABLE_FINDINGS]:
            yield finding(
                self.name,
                GGUF_TENSOR_TABLE,
                target,
                f"{name}: {message}.",
                (ByteRange(start=offset, end=offset + 1, description=message),),
                location=Location(offset=offset),
            )
        for key, source, _offset in info.templates:
            yield from template_findings(
                self.name, target, key, source, GGUF_TEMPLATE_INJECTION, GGUF_TEMPLATE_SUSPICIOUS
            )


DETECTORS = (GgufScanner,)
"""Detectors this module provides, for the registry."""
