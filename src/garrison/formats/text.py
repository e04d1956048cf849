"""Text formats: JSON, JSON Lines, CSV and plain text, judged from the head of the file."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter

from garrison.formats.info import Identification
from garrison.formats.source import Source

MAX_LINES = 50
"""Lines of a JSON Lines or CSV file checked."""

_JSON_PREFIX = re.compile(r"^\s*(\{\s*[\"}]|\[\s*[\[{\"\d\-tfn\]])")
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_CONTROL_ALLOWED = frozenset("\t\n\r\f\v")


def _decode(head: bytes, whole: bool) -> str | None:
    """The head as UTF-8 text, or ``None`` when it is binary."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not whole and exc.start >= len(head) - 3:
            text = head[: exc.start].decode("utf-8")  # a character cut by the end of the head
        else:
            try:  # legacy single-byte text (or UTF-8 mixed with it): still text, not binary
                text = head.decode("cp1252")
            except UnicodeDecodeError:
                return None
    text = text.removeprefix("\ufeff")
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in _CONTROL_ALLOWED) or ord(ch) == 127)
    if controls > len(text) // 100:
        return None
    return text


def _json_value(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict | list)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return False


def _jsonl(lines: list[str]) -> Identification | None:
    good = 0
    for number, line in enumerate(lines[:MAX_LINES], start=1):
        if _json_value(line):
            good += 1
        elif good >= 2:
            return Identification(format="jsonl", malformed=f"line {number} is not a JSON value")
        else:
            return None
    return Identification(format="jsonl", details=(("lines-checked", str(good)),)) if good >= 2 else None


def _csv(lines: list[str]) -> Identification | None:
    best: tuple[int, str] | None = None
    sample = "\n".join(lines[:MAX_LINES])
    for delimiter in _DELIMITERS:
        if delimiter not in sample:
            continue
        try:
            rows = [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if len(rows) < 2:
            continue
        # the usual width, held by nearly every row: a few ragged rows are malformed data, not prose
        width, count = Counter(len(row) for row in rows).most_common(1)[0]
        if width >= 2 and count >= max(2, len(rows) * 0.9) and (best is None or width > best[0]):
            best = (width, delimiter)
    if best is None:
        return None
    return Identification(
        format="csv", details=(("delimiter", _DELIMITERS[best[1]]), ("columns", str(best[0])))
    )


def sniff_text(src: Source) -> Identification | None:
    """Identify JSON, JSON Lines, CSV or plain text; ``None`` for binary content."""
    text = _decode(src.head, src.whole)
    if text is None:
        return None
    lines = text.splitlines()
    if not src.whole and lines:
        lines.pop()  # the last line may be cut off by the end of the head
    lines = [line for line in lines if line.strip()]
    if src.whole and _json_value(text):
        return Identification(format="json")
    found = _jsonl(lines)
    if found is not None:
        return found
    if not src.whole and _JSON_PREFIX.match(text):
        return Identification(format="json", details=(("checked", "prefix"),))
    found = _csv(lines)
    if found is not None:
        return found
    return Identification(format="text", details=(("encoding", "utf-8"),))
