"""Input scanners: the pipeline step that reads a request's text before it goes upstream.

Every scanner implements :class:`InputScanner`; the gateway runs them in order and stops at the
first that blocks. The regex filter here is the built-in one (patterns from policy); the LLM
guardrails plug their scanners into the same list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from garrison.gateway.types import Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanVerdict:
    """What one input scanner concluded about a request's text."""

    outcome: Outcome
    """ALLOW, FLAG (let through, mark in the audit log) or DENY."""
    reason: str = ""
    """Machine-readable cause, for the audit log (never an excerpt of the text)."""
    score: float = 0.0
    """Scanner-specific strength, 0..1 where it has one."""


class InputScanner(Protocol):
    """A scanner of request text."""

    name: str
    """Step name in decisions and metrics: ``input.<name>``."""

    def scan(self, texts: Sequence[str]) -> ScanVerdict:
        """Judge the caller's text (every message, prompt or input string of one request)."""
        ...


ALLOWED = ScanVerdict(outcome=Outcome.ALLOW)


class RegexFilter:
    """Deny or flag requests whose text matches policy patterns (case-insensitive).

    All patterns of one kind are combined into one alternation, so a clean request costs one
    ``search`` per text whatever the number of patterns; only a hit pays for finding which pattern.
    """

    name = "regex"

    def __init__(self, deny: Sequence[str], flag: Sequence[str] = ()) -> None:
        self._deny = [re.compile(p, re.IGNORECASE) for p in deny]
        self._flag = [re.compile(p, re.IGNORECASE) for p in flag]
        self._any_deny = _combine(deny)
        self._any_flag = _combine(flag)

    def scan(self, texts: Sequence[str]) -> ScanVerdict:
        for combined, patterns, outcome in (
            (self._any_deny, self._deny, Outcome.DENY),
            (self._any_flag, self._flag, Outcome.FLAG),
        ):
            if combined is None:
                continue
            for text in texts:
                if combined.search(text):
                    index = next(i for i, p in enumerate(patterns) if p.search(text))
                    return ScanVerdict(outcome=outcome, reason=f"pattern_{index}", score=1.0)
        return ALLOWED


def _combine(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
