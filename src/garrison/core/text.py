"""Text from hostile input made safe to write anywhere: reports, terminals, databases.

File names are bytes on POSIX; Python decodes those that are not UTF-8 with ``surrogateescape``, so
a ``str`` path can hold lone surrogates, and so can a ``str`` built by ``json.loads`` from
``"\\ud800"`` or a tar member name. No UTF-8 encoder takes them (SQLite, PostgreSQL, JSON files,
SARIF, a terminal), and NUL ends strings in C and PostgreSQL. :func:`visible` writes them out
instead, so a finding still names the file and the report still gets written.
"""

from __future__ import annotations

import re

_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape carries it
        return f"\\x{code - 0xDC00:02x}"
    if code == 0:
        return "\\x00"
    return f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with NUL written as ``\\x00``, each undecodable byte of a file name as ``\\xNN`` and any
    other lone surrogate as ``\\uNNNN``; ``text`` itself when it has none of them."""
    if not _unwritable(text):
        return text
    return _UNWRITABLE.sub(_escape, text)


def _unwritable(text: str) -> bool:
    # str.isascii and ``in`` are ~20 times faster than the regex on the usual all-ASCII text
    if text.isascii():
        return "\x00" in text
    return _UNWRITABLE.search(text) is not None


class WrittenOut:
    """Base of the frozen, slotted records that carry names and text from hostile input (assets,
    locations, evidence, scan records): every ``str`` field is run through :func:`visible` when the
    record is made."""

    __slots__ = ()

    def __post_init__(self) -> None:
        fields: tuple[str, ...] = self.__slots__  # the subclass's fields (this class has none)
        for name in fields:
            value = getattr(self, name)
            if type(value) is str and ("\x00" in value if value.isascii() else _unwritable(value)):
                object.__setattr__(self, name, _UNWRITABLE.sub(_escape, value))
