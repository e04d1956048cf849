"""Fast candidate search for the scanner's regexes: literal ``str.find`` passes, then anchored matches.

Python's ``re`` tries every position of the text when a pattern starts with ``\\b``, a look-behind or a
case-insensitive alternation, which is most of the scanner's patterns. Every match of those patterns
starts at (or a known offset before) a literal — ``born``, ``Mr``, ``AKIA``, ``@`` — so
:func:`literal_starts` finds those literals with ``str.find`` (a memchr-speed scan) and
:func:`match_at` runs the pattern anchored at each candidate, left to right, never overlapping: the
same matches as ``pattern.finditer(text)``, as long as the candidates include every possible start.

A NUL character (:data:`SEP`) is a hard boundary for every recognizer: no match spans it and no
context is looked for across it. :meth:`~garrison.recognizers.pii.Scanner.scan_many` joins the values of a
column with it and scans them as one text, with the same matches as scanning each value alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import NamedTuple

#: The character that separates values scanned together; nothing matches or looks across it.
SEP = "\x00"


def literal_starts(haystack: str, needles: Iterable[tuple[str, int]]) -> list[int]:
    """Sorted positions ``i - back`` for every occurrence ``i`` of each ``(needle, back)`` in ``haystack``."""
    found: set[int] = set()
    add = found.add
    # each literal is searched for once, however many offsets it comes with
    for needle, offsets in _grouped(tuple(needles)):
        i = haystack.find(needle)
        while i >= 0:
            for back in offsets:
                if i >= back:
                    add(i - back)
            i = haystack.find(needle, i + 1)
    return sorted(found)


@cache
def _grouped(needles: tuple[tuple[str, int], ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``needles`` with the offsets of each literal together (the scanner's needle tables are constants)."""
    backs: dict[str, list[int]] = {}
    for needle, back in needles:
        backs.setdefault(needle, []).append(back)
    return tuple((needle, tuple(offsets)) for needle, offsets in backs.items())


def match_at(pattern: re.Pattern[str], text: str, starts: Iterable[int]) -> Iterator[re.Match[str]]:
    """``pattern`` anchored at each of ``starts`` (ascending), skipping starts inside an earlier match."""
    last_end = 0
    match = pattern.match
    for start in starts:
        if start < last_end:
            continue
        m = match(text, start)
        if m is not None and m.end() > m.start():
            last_end = m.end()
            yield m


def lowered(text: str) -> str | None:
    """``text.lower()`` when it keeps every offset (no character lower-cases to two), else None."""
    low = text.lower()
    return low if len(low) == len(text) else None


def segment(text: str, start: int, end: int) -> tuple[int, int]:
    """Bounds of the :data:`SEP`-separated value of ``text`` that holds ``text[start:end]``."""
    return text.rfind(SEP, 0, start) + 1, _end_or_len(text, text.find(SEP, end))


def after_sep(text: str, lo: int, start: int) -> int:
    """``lo``, or the position just past the last :data:`SEP` in ``text[lo:start]``."""
    cut = text.rfind(SEP, lo, start)
    return lo if cut < 0 else cut + 1


def before_sep(text: str, start: int, hi: int) -> int:
    """``hi``, or the position of the first :data:`SEP` in ``text[start:hi]``."""
    cut = text.find(SEP, start, hi)
    return hi if cut < 0 else cut


def _end_or_len(text: str, found: int) -> int:
    return len(text) if found < 0 else found


class Shape(NamedTuple):
    """What a text holds, found at C speed once per scan: a recognizer that needs a capital, a digit
    or a space skips a text that has none (a column of e-mails, of amounts, of lower-case comments)."""

    low: str | None
    """:func:`lowered` of the text."""
    upper: bool
    """Whether it may hold a capital letter (a character that ``lower()`` changes)."""
    cased: bool
    """Whether it may hold a letter with case, capital or small."""
    digit: bool
    """Whether it may hold a digit (``\\d``)."""
    space: bool
    """Whether it may hold white space (``\\s``, which is ``str.isspace``)."""


_DIGIT = re.compile(r"\d")
_ASCII_DIGITS = "0123456789"


def shape(text: str) -> Shape:
    """The :class:`Shape` of ``text``; each flag is True whenever in doubt."""
    low = lowered(text)
    upper = low is None or low != text
    cased = upper or text.upper() != text
    digit = any(d in text for d in _ASCII_DIGITS) if text.isascii() else _DIGIT.search(text) is not None
    words = text.split(None, 1)
    space = len(words) != 1 or words[0] != text
    return Shape(low=low, upper=upper, cased=cased, digit=digit, space=space)
