"""Evidence: why a finding was raised, as a tagged union of small frozen records.

Every kind has a :meth:`stable_key` that leaves out what moves when a file is edited (offsets,
indexes, line numbers), so fingerprints survive edits, and a ``to_dict``/``evidence_from_dict`` pair
for the JSON report and the store. Text that may be a secret is stored masked, with a hash for
identity; the raw value never enters evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from garrison.core.errors import InputError
from garrison.core.text import WrittenOut


@dataclass(frozen=True, slots=True, kw_only=True)
class ByteRange(WrittenOut):
    """A span of bytes in a file or archive member."""

    kind: ClassVar[str] = "bytes"
    start: int
    """Offset of the first byte."""
    end: int
    """Offset one past the last byte."""
    description: str = ""
    """What lies there, for example ``header declares 4 GiB``."""

    def stable_key(self) -> str:
        """Identity without offsets: the description only."""
        return self.description

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {"kind": self.kind, "start": self.start, "end": self.end, "description": self.description}


@dataclass(frozen=True, slots=True, kw_only=True)
class OpcodeRef(WrittenOut):
    """An instruction in a serialized program (a pickle opcode, a bytecode op)."""

    kind: ClassVar[str] = "opcode"
    index: int
    """Position of the opcode in the stream."""
    offset: int
    """Byte offset of the opcode."""
    opcode: str
    """Opcode name, for example ``STACK_GLOBAL``."""
    argument: str = ""
    """What the opcode referred to, for example ``os.system``."""

    def stable_key(self) -> str:
        """Identity without positions: the opcode and its argument."""
        return f"{self.opcode}:{self.argument}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {
            "kind": self.kind,
            "index": self.index,
            "offset": self.offset,
            "opcode": self.opcode,
            "argument": self.argument,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TextSpan(WrittenOut):
    """A span of text that matched, masked where it may be sensitive."""

    kind: ClassVar[str] = "text"
    start: int
    """Character offset of the start of the match."""
    end: int
    """Character offset one past the end."""
    excerpt: str
    """What matched, already masked if it may be a secret or personal data."""
    value_hash: str = ""
    """Hash of the unmasked value (``masking.secret_hash``), for identity without disclosure."""
    score: float | None = None
    """Detector score for this span, where it has one."""

    def stable_key(self) -> str:
        """Identity: the hash of the value if there is one, else the masked excerpt."""
        return self.value_hash or self.excerpt

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "excerpt": self.excerpt,
            "value_hash": self.value_hash,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric(WrittenOut):
    """A measured value compared with a threshold (robust accuracy, membership AUC, ...)."""

    kind: ClassVar[str] = "metric"
    name: str
    """What was measured."""
    value: float
    """The measurement."""
    threshold: float | None = None
    """The policy threshold it was compared with."""
    comparison: str = ""
    """How it was compared: ``>``, ``<``, ``>=``, ``<=``."""

    def stable_key(self) -> str:
        """Identity: the metric's name, not its value (values drift between runs)."""
        return self.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation(WrittenOut):
    """A named fact about the asset, with the value expected where there is one."""

    kind: ClassVar[str] = "observation"
    name: str
    """What was observed, for example ``content-format``."""
    actual: str
    """What was found."""
    expected: str = ""
    """What should have been found, where that is known."""

    def stable_key(self) -> str:
        """Identity: the whole observation (it has no positions)."""
        return f"{self.name}={self.actual}/{self.expected}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {"kind": self.kind, "name": self.name, "actual": self.actual, "expected": self.expected}


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange(WrittenOut):
    """A request and its response (gateway decisions, probes against an endpoint)."""

    kind: ClassVar[str] = "exchange"
    request_id: str
    """The request's id."""
    request: str = ""
    """The request, masked and truncated."""
    response: str = ""
    """The response, masked and truncated."""

    def stable_key(self) -> str:
        """Identity: the request text (ids change on every run)."""
        return self.request

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, tagged with ``kind``."""
        return {
            "kind": self.kind,
            "request_id": self.request_id,
            "request": self.request,
            "response": self.response,
        }


Evidence = ByteRange | OpcodeRef | TextSpan | Metric | Observation | Exchange

_KINDS: dict[str, type[Evidence]] = {
    cls.kind: cls for cls in (ByteRange, OpcodeRef, TextSpan, Metric, Observation, Exchange)
}


def evidence_from_dict(data: dict[str, Any]) -> Evidence:
    """Rebuild evidence from its ``to_dict`` form; raise ``InputError`` on an unknown shape."""
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise InputError(f"evidence of unknown kind {kind!r}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise InputError(f"evidence of kind {kind!r} has unexpected fields: {exc}") from None
