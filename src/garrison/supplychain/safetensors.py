"""The safetensors scanner: a strict check of the header against the specification.

A safetensors file is an unsigned 64-bit little-endian header length, a JSON header (an object
of tensor name to ``{"dtype", "shape", "data_offsets"}`` plus an optional ``__metadata__`` map of
strings) and the tensor bytes. The reference loader rejects anything else; other loaders are more
lenient, and every leniency is a way to show one tool different weights from another or to make
a loader allocate or read what it should not. Only the header is read, never the tensor data.
"""

from __future__ import annotations

import io
import math
import struct
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.core.evidence import ByteRange, Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.supplychain.formats_extra.common import file_name, finding, short
from garrison.supplychain.formats_extra.rules_sft import (
    BAD_METADATA,
    BAD_TENSOR,
    DATA_GAPS,
    DUPLICATE_KEYS,
    HEADER_LIMIT,
    MALFORMED_HEADER,
    OFFSETS_OUT_OF_RANGE,
    OVERLAPPING_TENSORS,
    RULES,
)
from garrison.supplychain.formats_extra.strictjson import JsonLimitError, JsonProblemError, loads_strict
from garrison.supplychain.whole import whole_file

HEADER_LIMIT_BYTES = 100 * 1000 * 1000
"""Largest header accepted (the reference implementation's limit)."""

MAX_TENSORS = 1_000_000
"""Most tensors checked."""

MAX_DEPTH = 8
"""Deepest JSON nesting accepted in a header (real headers are three levels deep)."""

MAX_FINDINGS_PER_RULE = 20

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "I64": 64, "U64": 64, "F64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
"""Bits per element of every dtype the safetensors specification defines."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def header_issues(header: dict[str, Any], data_len: int) -> Iterator[tuple[Rule, str]]:
    """Problems of a parsed header, given the size of the data region."""
    ranges: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        label = short(name, 60)
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                yield BAD_METADATA, "__metadata__ is not a map of strings to strings"
            continue
        if not isinstance(entry, dict):
            yield BAD_TENSOR, f"tensor {label!r} is not an object"
            continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            yield OFFSETS_OUT_OF_RANGE, f"tensor {label!r} has data_offsets that are not two integers"
            continue
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            yield (
                OFFSETS_OUT_OF_RANGE,
                (
                    f"tensor {label!r} has data_offsets [{begin}, {end}] outside the "
                    f"{data_len}-byte data region"
                ),
            )
            continue
        ranges.append((begin, end, label))
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            yield BAD_TENSOR, f"tensor {label!r} has the unknown dtype {short(str(dtype), 40)!r}"
            continue
        if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
            yield BAD_TENSOR, f"tensor {label!r} has an invalid shape {short(str(shape), 60)}"
            continue
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            yield (
                BAD_TENSOR,
                (
                    f"tensor {label!r} is {dtype} {shape} ({bits / 8:g} bytes) but its data_offsets span "
                    f"{end - begin} bytes"
                ),
            )
    yield from _coverage(ranges, data_len)


def _coverage(ranges: list[tuple[int, int, str]], data_len: int) -> Iterator[tuple[Rule, str]]:
    ranges.sort()
    covered = 0
    previous = ""
    for begin, end, label in ranges:
        if begin < covered:
            yield OVERLAPPING_TENSORS, f"tensor {label!r} [{begin}, {end}] overlaps {previous!r}"
        elif begin > covered:
            yield DATA_GAPS, f"bytes {covered} to {begin} are not covered by any tensor"
        if end > covered:
            covered, previous = end, label
    if covered < data_len:
        yield DATA_GAPS, f"{data_len - covered} bytes follow the last tensor"


class SafetensorsScanner(FileDetector):
    """Checks safetensors headers strictly: lengths, JSON, dtypes, shapes, offsets and coverage.

    Emits GAR-SFT-101 to 107 for header violations and GAR-SFT-201 for oversized headers.
    """

    name: ClassVar[str] = "safetensors-header"
    summary: ClassVar[str] = (
        "Checks safetensors headers against the specification (lengths, offsets, dtypes)."
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES
    formats: ClassVar[frozenset[str]] = frozenset({"safetensors"})

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one safetensors file."""
        name = file_name(target)
        whole = whole_file(target)
        size = target.path.stat().st_size if whole is None else len(whole)
        with target.open() if whole is None else io.BytesIO(whole) as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                yield self._at(
                    target, MALFORMED_HEADER, f"{name} is shorter than its 8-byte header length", 0, 8
                )
                return
            length = struct.unpack("<Q", prefix)[0]
            if length > HEADER_LIMIT_BYTES:
                yield self._at(target, HEADER_LIMIT, f"{name} declares a {length}-byte header", 0, 8)
                return
            if 8 + length > size:
                yield self._at(
                    target,
                    MALFORMED_HEADER,
                    f"{name}: header length {length} runs past the {size}-byte file",
                    0,
                    8,
                )
                return
            raw = handle.read(length)
        yield from self._header(target, name, raw, size - 8 - length)

    def _header(self, target: FileTarget, name: str, raw: bytes, data_len: int) -> Iterator[Finding]:
        end = 8 + len(raw)
        if not raw.startswith(b"{"):
            yield self._at(target, MALFORMED_HEADER, f"{name}: header does not start with '{{'", 8, end)
            return
        try:
            parsed = loads_strict(raw, max_bytes=HEADER_LIMIT_BYTES, max_depth=MAX_DEPTH)
        except JsonLimitError as exc:
            yield self._at(target, HEADER_LIMIT, f"{name}: {exc}", 8, end)
            return
        except JsonProblemError as exc:
            yield self._at(
                target, MALFORMED_HEADER, f"{name}: header is rejected by a strict parser: {exc}", 8, end
            )
            return
        if parsed.duplicates:
            keys = ", ".join(repr(short(k, 40)) for k in parsed.duplicates[:5])
            yield self._at(target, DUPLICATE_KEYS, f"{name}: header repeats keys {keys}", 8, end)
        header = parsed.value
        if not isinstance(header, dict):
            yield self._at(target, MALFORMED_HEADER, f"{name}: header is not a JSON object", 8, end)
            return
        if len(header) > MAX_TENSORS:
            yield self._at(target, HEADER_LIMIT, f"{name}: header lists {len(header)} tensors", 8, end)
            return
        counts: dict[str, int] = defaultdict(int)
        for rule, message in header_issues(header, data_len):
            counts[rule.id] += 1
            if counts[rule.id] <= MAX_FINDINGS_PER_RULE:
                yield self._at(target, rule, f"{name}: {message}", 8, end)

    def _at(self, target: FileTarget, rule: Rule, message: str, start: int, end: int) -> Finding:
        return finding(
            self.name,
            rule,
            target,
            message + ".",
            (
                ByteRange(start=start, end=end, description=rule.name),
                Observation(name="check", actual=short(message, 200)),
            ),
            location=Location(offset=start),
        )


DETECTORS = (SafetensorsScanner,)
"""Detectors this module provides, for the registry."""
