"""A declared dataset schema: what each column must hold, loaded from TOML (or JSON) and written back.

A schema file names the columns and, for each, its ``type`` and the checks its values must pass::

    version = 1
    required_columns = ["id", "email"]
    allow_extra_columns = false

    [columns.id]
    type = "integer"
    nullable = false
    unique = true
    min = 1

    [columns.country]
    type = "string"
    allowed = ["DE", "FR", "US"]

Column keys: ``type`` (string, integer, number, boolean, date, datetime), ``nullable``, ``min`` /
``max`` (numbers, dates, datetimes), ``min_length`` / ``max_length`` (characters), ``allowed`` (a
list), ``regex`` (must match the whole value), ``unique``. A nested JSON Lines field is a dotted
column (``[columns."user.email"]``). Anything else in the file is a :class:`ConfigError` naming the
file, the column and the key. :func:`~garrison.data.schema_infer.infer_schema` writes a first draft;
:func:`~garrison.data.schema_validate.validate` checks a dataset against it.

Regular expressions run on Python's ``re``, which has no timeout: a pattern is limited to
:data:`MAX_REGEX_CHARS` characters and is only run on values up to :data:`MAX_REGEX_INPUT` characters
(a longer value is a violation), which bounds the time a pathological pattern can take per value.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from garrison.core.errors import ConfigError, InputError
from garrison.data.schema_types import ColumnType, Value, as_utc, parse

__all__ = ["MAX_REGEX_CHARS", "MAX_REGEX_INPUT", "ColumnSchema", "Schema", "load_schema", "parse_schema"]

MAX_REGEX_CHARS = 1_000
"""The longest ``regex`` a schema may declare."""
MAX_REGEX_INPUT = 10_000
"""The longest value a ``regex`` is run on; a longer value fails the check without being matched."""
SCHEMA_VERSION = 1
"""The version of the schema file format this module reads and writes."""

Bound = int | float | date | datetime
"""A ``min`` or ``max``: a number for numeric columns, a date or datetime for those columns."""

_COLUMN_KEYS = (
    "type",
    "nullable",
    "min",
    "max",
    "min_length",
    "max_length",
    "allowed",
    "regex",
    "unique",
    "description",
)
_TOP_KEYS = ("version", "required_columns", "allow_extra_columns", "columns")


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnSchema:
    """What one column must hold."""

    name: str
    """The column's name; nested JSON fields are dotted (``user.email``)."""
    type: ColumnType = ColumnType.STRING
    """The type every non-null value must parse as."""
    nullable: bool = True
    """Whether a value may be missing (null, or an empty CSV field)."""
    min: Bound | None = None
    """Smallest allowed value (numeric, date and datetime columns)."""
    max: Bound | None = None
    """Largest allowed value (numeric, date and datetime columns)."""
    min_length: int | None = None
    """Fewest characters a value may have."""
    max_length: int | None = None
    """Most characters a value may have."""
    allowed: tuple[str, ...] | None = None
    """The only values allowed, as text; compared after parsing as :attr:`type`."""
    regex: str | None = None
    """A regular expression every value must match in full."""
    unique: bool = False
    """Whether no two rows may hold the same value."""
    description: str = ""
    """What the column holds, for people; not checked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    """What a dataset must look like."""

    columns: tuple[ColumnSchema, ...] = ()
    """The declared columns, in file order."""
    required_columns: tuple[str, ...] = ()
    """Columns the dataset must have (a declared column that is not required may be absent)."""
    allow_extra_columns: bool = True
    """Whether the dataset may have columns the schema does not declare."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """Comment lines written at the top of the file (inference says what it looked at)."""

    def column(self, name: str) -> ColumnSchema | None:
        """The declared column called ``name``, if any."""
        return next((c for c in self.columns if c.name == name), None)

    def to_toml(self) -> str:
        """The schema as a readable TOML file, with comments, that :func:`load_schema` reads back."""
        from garrison.data.schema_toml import schema_to_toml

        return schema_to_toml(self)


def load_schema(path: Path) -> Schema:
    """Read a schema file: TOML, or JSON when the name ends in ``.json``.

    Raises :class:`InputError` when the file cannot be read and :class:`ConfigError` when it is not
    a valid schema (the message names the file, the column and the key).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: the schema cannot be read: {exc}") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    return parse_schema(raw, source=str(path))


def _fail(source: str, where: str, message: str) -> ConfigError:
    hint = "keys of a column: " + ", ".join(_COLUMN_KEYS)
    return ConfigError(f"{source}: {where}: {message}", hint=hint)


def parse_schema(raw: Any, *, source: str = "schema") -> Schema:
    """A :class:`Schema` from the mapping a TOML or JSON file holds; ``source`` names it in errors."""
    if not isinstance(raw, dict):
        raise _fail(source, "top level", "a schema is a table (TOML) or an object (JSON)")
    for key in raw:
        if key not in _TOP_KEYS:
            raise _fail(source, f"key {key!r}", "unknown key; expected " + ", ".join(_TOP_KEYS))
    version = raw.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _fail(source, "key 'version'", f"{version!r} is not supported; expected {SCHEMA_VERSION}")
    columns_raw = raw.get("columns", {})
    if not isinstance(columns_raw, dict):
        raise _fail(source, "key 'columns'", "must be a table of column name to column table")
    columns = tuple(_column(source, str(name), spec) for name, spec in columns_raw.items())
    required = _strings(source, "key 'required_columns'", raw.get("required_columns", []))
    extra = raw.get("allow_extra_columns", True)
    if not isinstance(extra, bool):
        raise _fail(source, "key 'allow_extra_columns'", f"must be true or false, not {extra!r}")
    return Schema(columns=columns, required_columns=tuple(required), allow_extra_columns=extra)


def _strings(source: str, where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, where, "must be a list of strings")
    return list(value)


def _column(source: str, name: str, spec: Any) -> ColumnSchema:
    where = f"column {name!r}"
    if not isinstance(spec, dict):
        raise _fail(source, where, "must be a table of checks")
    for key in spec:
        if key not in _COLUMN_KEYS:
            raise _fail(source, f"{where} key {key!r}", "unknown key")
    type_text = spec.get("type", "string")
    try:
        kind = ColumnType(type_text)
    except ValueError:
        names = ", ".join(t.value for t in ColumnType)
        raise _fail(source, f"{where} key 'type'", f"{type_text!r} is not one of {names}") from None

    def flag(key: str, default: bool) -> bool:
        value = spec.get(key, default)
        if not isinstance(value, bool):
            raise _fail(source, f"{where} key {key!r}", f"must be true or false, not {value!r}")
        return value

    def count(key: str) -> int | None:
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _fail(source, f"{where} key {key!r}", f"must be a whole number >= 0, not {value!r}")
        return value

    description = spec.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, f"{where} key 'description'", "must be a string")
    return ColumnSchema(
        name=name,
        type=kind,
        nullable=flag("nullable", True),
        min=_bound(source, where, "min", kind, spec.get("min")),
        max=_bound(source, where, "max", kind, spec.get("max")),
        min_length=count("min_length"),
        max_length=count("max_length"),
        allowed=_allowed(source, where, kind, spec.get("allowed")),
        regex=_regex(source, where, spec.get("regex")),
        unique=flag("unique", False),
        description=description,
    )


def _bound(source: str, where: str, key: str, kind: ColumnType, value: Any) -> Bound | None:
    if value is None:
        return None
    at = f"{where} key {key!r}"
    if kind in (ColumnType.INTEGER, ColumnType.NUMBER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, at, f"must be a number for a {kind} column, not {value!r}")
        return value
    if kind in (ColumnType.DATE, ColumnType.DATETIME):
        parsed: Value | None = value
        if isinstance(value, str):
            parsed = parse(kind, value)
        if kind is ColumnType.DATE and isinstance(parsed, date) and not isinstance(parsed, datetime):
            return parsed
        if kind is ColumnType.DATETIME and isinstance(parsed, datetime):
            return as_utc(parsed)
        raise _fail(source, at, f"must be a {kind} (ISO 8601) for a {kind} column, not {value!r}")
    raise _fail(source, at, f"applies to integer, number, date and datetime columns, not {kind}")


def _allowed(source: str, where: str, kind: ColumnType, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    at = f"{where} key 'allowed'"
    if not isinstance(value, list) or not value:
        raise _fail(source, at, "must be a non-empty list")
    texts: list[str] = []
    for item in value:
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, str | int | float | date):
            text = item.isoformat() if isinstance(item, date) else str(item)
        else:
            raise _fail(source, at, f"{item!r} is not a string, number, boolean or date")
        if parse(kind, text) is None:
            raise _fail(source, at, f"{item!r} is not a {kind}")
        texts.append(text)
    return tuple(texts)


def _regex(source: str, where: str, value: Any) -> str | None:
    if value is None:
        return None
    at = f"{where} key 'regex'"
    if not isinstance(value, str):
        raise _fail(source, at, f"must be a string, not {value!r}")
    if len(value) > MAX_REGEX_CHARS:
        raise _fail(source, at, f"is {len(value):,} characters; the limit is {MAX_REGEX_CHARS:,}")
    try:
        re.compile(value)
    except re.error as exc:
        raise _fail(source, at, f"does not compile: {exc}") from None
    return value
