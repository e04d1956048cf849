"""Fast candidate search for the scanner's regexes: literal ``str.find`` passes, then anchored matches.

Python's ``re`` tries every position of the text when a pattern starts with ``\\b``, a look-behind or a
case-insensitive alternation, which is most of the scanner's patterns. Every match of those patterns
starts at (or a known offset before) a literal — ``born``, ``Mr``, ``AKIA``, ``@`` — so
:func:`literal_starts` finds those literals with ``str.find`` (a memchr-speed scan) and
:func:`match_at` runs the pattern anchored at each candidate, left to right, never overlapping: the
same matches as ``pattern.finditer(text)``, as long as the candidates include every possible start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator


def literal_starts(haystack: str, needles: Iterable[tuple[str, int]]) -> list[int]:
    """Sorted positions ``i - back`` for every occurrence ``i`` of each ``(needle, back)`` in ``haystack``."""
    found: set[int] = set()
    add = found.add
    for needle, back in needles:
        i = haystack.find(needle)
        while i >= 0:
            if i >= back:
                add(i - back)
            i = haystack.find(needle, i + 1)
    return sorted(found)


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
