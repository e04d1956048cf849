"""TorchScript code members: operations that reach files, native libraries or Python's evaluator.

TorchScript source in ``code/`` is compiled by ``torch.jit.load`` and runs when the model is loaded
or called. Ordinary exported models use tensor maths; the patterns below are the operations that
let archived code read or write files, load shared libraries or evaluate strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_CODE_BYTES = 16 * 2**20
"""Most bytes of one code member searched."""

DANGEROUS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reads a file into a tensor (aten::from_file)", re.compile(r"\bfrom_file\s*\(")),
    (
        "writes a file (aten::save / torch.save)",
        re.compile(r"(?:\btorch\.save|\baten\.save|aten::save)\s*\("),
    ),
    ("loads a native library", re.compile(r"\bload_library\s*\(")),
    ("imports a Python module", re.compile(r"\b__import__\b|\bimportlib\b")),
    ("evaluates a string", re.compile(r"(?<![\w.])(?:eval|exec|compile)\s*\(")),
    ("runs a shell command", re.compile(r"\bos\.(?:system|popen|exec\w*)\b|\bsubprocess\b")),
    ("reaches Python built-ins", re.compile(r"\b__builtins__\b|\bbuiltins\.")),
    ("calls back into Python (prim::PythonOp)", re.compile(r"\bPythonOp\b")),
)
"""What each pattern means, and the pattern."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeHit:
    """One dangerous operation in a code member."""

    what: str
    """What the operation does."""
    excerpt: str
    """The matched text, trimmed."""
    start: int
    """Character offset of the match."""
    end: int
    """Character offset one past its end."""


def dangerous_calls(source: bytes) -> Iterator[CodeHit]:
    """Every match of :data:`DANGEROUS` in ``source`` (decoded leniently, comments included)."""
    text = source[:MAX_CODE_BYTES].decode("utf-8", "replace")
    for what, pattern in DANGEROUS:
        for match in pattern.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)].strip()
            yield CodeHit(what=what, excerpt=line[:160], start=match.start(), end=match.end())
