"""The vocabulary every LLM scanner speaks: a verdict, the spans that triggered it, and a result.

An input scanner looks at a prompt (or a document passed to the model); an output scanner looks at
what the model wrote. Both answer with a :class:`ScanResult`: a score in ``[0, 1]``, a verdict taken
from the score by the policy's thresholds, and the spans of text that raised it. A scanner that
rewrites text (redaction, stripping invisible characters) also returns the rewritten text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from garrison.llm.output_scanners import Vault


class Verdict(StrEnum):
    """What a scanner (or a whole report) says should happen to the text."""

    ALLOW = "allow"
    FLAG = "flag"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        """0 for allow, 1 for flag, 2 for block: the higher, the stronger."""
        return _RANK[self]


_RANK = {Verdict.ALLOW: 0, Verdict.FLAG: 1, Verdict.BLOCK: 2}


def strongest(verdicts: Iterable[Verdict]) -> Verdict:
    """The strongest of ``verdicts`` (block over flag over allow); allow when there are none."""
    best = Verdict.ALLOW
    for v in verdicts:
        if _RANK[v] > _RANK[best]:
            best = v
    return best


def verdict_for(score: float, *, flag_at: float, block_at: float | None) -> Verdict:
    """Block at or above ``block_at`` (never when it is ``None``), flag at or above ``flag_at``."""
    if block_at is not None and score >= block_at:
        return Verdict.BLOCK
    if score >= flag_at:
        return Verdict.FLAG
    return Verdict.ALLOW


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """A piece of the scanned text that contributed to a result."""

    start: int
    """Offset of the first character, in characters of the scanned text."""
    end: int
    """Offset one past the last character."""
    kind: str
    """What it is: ``injection``, ``tag-characters``, ``base64``, ``email``, ``url``…"""
    score: float
    """How strongly this span counts, in ``[0, 1]``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    """One scanner's answer for one text."""

    scanner: str
    """Name of the scanner (``injection``, ``pii``…)."""
    score: float
    """Highest span score, in ``[0, 1]``; 0 when nothing was found."""
    verdict: Verdict
    """Allow, flag or block, from the score and the policy's thresholds for this scanner."""
    spans: tuple[Span, ...] = ()
    """What triggered the result, by position. May hold spans below the flag threshold."""
    redacted_text: str | None = None
    """The text with this scanner's spans replaced, for scanners that rewrite; else ``None``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanContext:
    """What a scanner may need besides the text itself."""

    document: bool = False
    """The text is a document, web page, e-mail or tool output passed to the model, not the
    user's own prompt: instructions in it are indirect injection."""
    prompt: str | None = None
    """For output scanners: the prompt that produced the output."""
    system_prompt: str | None = None
    """For output scanners: the system prompt to look for in the output (overrides the policy's)."""
    vault: Vault | None = None
    """The request's vault of anonymised values, when anonymisation is on."""


EMPTY_CONTEXT = ScanContext()


class InputScanner(Protocol):
    """Looks at a prompt or a document before the model sees it."""

    name: str

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Scan ``text``; never raises for content, only for a misuse (a text that is not ``str``)."""
        ...


class OutputScanner(Protocol):
    """Looks at what the model wrote before the caller sees it."""

    name: str

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Scan ``text``; never raises for content."""
        ...


def placeholder(kind: str) -> str:
    """The redaction marker for a span kind: ``credit-card:visa`` becomes ``[CREDIT_CARD]`` (the part
    after a colon is the finer kind and is left out)."""
    kind = kind.split(":", 1)[0]
    return "[" + kind.upper().replace("-", "_").replace(" ", "_") + "]"


def apply_redactions(text: str, spans: Iterable[Span]) -> str:
    """``text`` with each span replaced by :func:`placeholder` of its kind; overlaps keep the first."""
    out: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start < pos:
            continue
        out.append(text[pos : span.start])
        out.append(placeholder(span.kind))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def result(
    scanner: str,
    spans: Iterable[Span],
    *,
    flag_at: float,
    block_at: float | None,
    redacted_text: str | None = None,
    score: float | None = None,
) -> ScanResult:
    """A result whose score is the highest span score (or ``score``) and verdict from the thresholds."""
    spans = tuple(sorted(spans, key=lambda s: (s.start, s.end)))
    top = score if score is not None else max((s.score for s in spans), default=0.0)
    top = min(max(top, 0.0), 1.0)
    return ScanResult(
        scanner=scanner,
        score=top,
        verdict=verdict_for(top, flag_at=flag_at, block_at=block_at),
        spans=spans,
        redacted_text=redacted_text,
    )
