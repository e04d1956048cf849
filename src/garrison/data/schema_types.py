"""The value types a dataset schema declares, and how a text value is read as each of them.

Every reader yields values as text (:mod:`garrison.data.readers`), so a type is a parser: it takes
the text and returns the typed value, or ``None`` when the text is not of that type. The parsers are
strict on purpose: ``1.0`` is not an integer, ``2024-1-2`` is not a date. Datetimes without an offset
are taken as UTC, so that every datetime compares with every other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum

__all__ = ["INFERENCE_ORDER", "ColumnType", "Value", "is_null", "parse"]

Value = int | float | bool | date | datetime | str
"""A value read as its column's type."""


class ColumnType(StrEnum):
    """The type of a column's values."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


INFERENCE_ORDER: tuple[ColumnType, ...] = (
    ColumnType.INTEGER,
    ColumnType.NUMBER,
    ColumnType.BOOLEAN,
    ColumnType.DATE,
    ColumnType.DATETIME,
)
"""The types inference tries, most specific first; a column none of them fits is a string."""

_INTEGER = re.compile(r"[+-]?\d{1,40}")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def is_null(text: str | None) -> bool:
    """Whether a value is missing: a null, or an empty field (CSV cannot tell the two apart)."""
    return text is None or text == ""


def _integer(text: str) -> int | None:
    return int(text) if _INTEGER.fullmatch(text) else None


def _number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _boolean(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def as_utc(value: datetime) -> datetime:
    """``value`` with UTC as its zone when it has none, so that any two datetimes compare."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _datetime(text: str) -> datetime | None:
    if not _DATETIME.fullmatch(text):
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _string(text: str) -> str:
    return text


_PARSERS: dict[ColumnType, Callable[[str], Value | None]] = {
    ColumnType.STRING: _string,
    ColumnType.INTEGER: _integer,
    ColumnType.NUMBER: _number,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DATE: _date,
    ColumnType.DATETIME: _datetime,
}


def parser(kind: ColumnType) -> Callable[[str], Value | None]:
    """The parser of a type: text in, the typed value or ``None`` out."""
    return _PARSERS[kind]


def parse(kind: ColumnType, text: str) -> Value | None:
    """``text`` read as ``kind``, or ``None`` when it is not of that type."""
    return _PARSERS[kind](text)


def describe(value: object) -> str:
    """A bound or allowed value as a person reads it in a message."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)
