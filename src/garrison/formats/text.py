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


#: Byte-order marks of UTF-16 (spreadsheets export "Unicode text" so); UTF-32's starts like the LE one.
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def is_utf16(head: bytes) -> bool:
    """Whether ``head`` starts with a UTF-16 byte-order mark (and not UTF-32's)."""
    return head.startswith(UTF16_BOMS) and not head.startswith(b"\xff\xfe\x00\x00")


def decode_utf16(head: bytes, whole: bool) -> str | None:
    """``head`` (starting with a UTF-16 BOM) as text without the BOM, or ``None`` when it is not
    UTF-16; a code unit or surrogate pair cut by the end of a partial head is dropped."""
    if not whole:
        head = head[: len(head) - len(head) % 2]
    try:
        return head.decode("utf-16")
    except UnicodeDecodeError as exc:
        if whole or exc.start < len(head) - 4:
            return None
        return head[: exc.start].decode("utf-16", errors="replace")


def _decode(head: bytes, whole: bool) -> str | None:
    """The head as text (UTF-8, cp1252, or UTF-16 with its BOM), or ``None`` when it is binary."""
    if is_utf16(head):
        utf16 = decode_utf16(head, whole)
        return None if utf16 is None or "\x00" in utf16 else _text_or_none(utf16)
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
    return _text_or_none(text.removeprefix("\ufeff"))


def _text_or_none(text: str) -> str | None:
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
    return Identification(format="text", details=(("encoding", "utf-16" if is_utf16(src.head) else "utf-8"),))
