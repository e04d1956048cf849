"""Write a :class:`~garrison.data.schema.Schema` as TOML a person can read and edit."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from garrison.data.schema_types import ColumnType

if TYPE_CHECKING:
    from garrison.data.schema import ColumnSchema, Schema

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _string(text: str) -> str:
    # A JSON string is a TOML basic string except for "\/", which json.dumps never writes.
    return json.dumps(text, ensure_ascii=False)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    return _string(str(value))


def _column(column: ColumnSchema) -> list[str]:
    lines = [f"[columns.{_key(column.name)}]"]
    if column.description:
        lines.append(f"description = {_string(column.description)}")
    lines.append(f'type = "{column.type.value}"')
    lines.append(f"nullable = {_scalar(column.nullable)}")
    if column.unique:
        lines.append("unique = true")
    for key in ("min", "max", "min_length", "max_length"):
        value = getattr(column, key)
        if value is not None:
            lines.append(f"{key} = {_scalar(value)}")
    if column.allowed is not None:
        items = ", ".join(_string(v) for v in column.allowed)
        lines.append(f"allowed = [{items}]")
    if column.regex is not None:
        lines.append(f"regex = {_string(column.regex)}")
    return lines


def schema_to_toml(schema: Schema) -> str:
    """The TOML text of ``schema``, with a header explaining the keys."""
    types = ", ".join(t.value for t in ColumnType)
    lines = [
        "# Garrison dataset schema: check a dataset with",
        "#   garrison data validate DATASET --schema THIS_FILE",
        f"# Column keys: type ({types}),",
        "# nullable, min, max, min_length, max_length, allowed (list), regex (full match), unique,",
        "# description.",
    ]
    lines.extend(f"# {note}" for note in schema.notes)
    lines += ["", "version = 1"]
    required = ", ".join(_string(c) for c in schema.required_columns)
    lines.append(f"required_columns = [{required}]")
    lines.append(f"allow_extra_columns = {_scalar(schema.allow_extra_columns)}")
    for column in schema.columns:
        lines.append("")
        lines.extend(_column(column))
    return "\n".join(lines) + "\n"
