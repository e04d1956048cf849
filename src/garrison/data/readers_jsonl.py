"""Streaming JSON Lines and plain text.

Row numbers are physical line numbers, starting at 1. In JSON Lines a blank line is skipped (its
number is not reused); in plain text every line is a row, blank ones included.

A JSON object is flattened to dotted column paths (``{"a": {"b": 1}}`` gives ``a.b``), lists to
indexed paths (``a.0``, ``a.1``, ...) up to :data:`MAX_LIST_ITEMS` items, nesting up to
:data:`MAX_DEPTH` levels (deeper values are kept as JSON text). A line whose value is not an object
is one column, ``value``. Values are text: strings as they are, numbers and booleans as JSON writes
them, ``null`` as ``None``, empty objects and lists as ``{}`` and ``[]``. A batch's columns are every
column seen so far in the file, in the order first seen, up to :data:`MAX_COLUMNS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from garrison.data.readers_common import Batch, LineReader, ReadProblem

MAX_LIST_ITEMS = 64
"""List items flattened into their own columns; the rest of a longer list is dropped, with a problem."""
MAX_DEPTH = 16
"""Nesting levels flattened; a value deeper than this is kept as JSON text."""
MAX_COLUMNS = 10_000
"""Distinct columns kept per file; keys beyond it are dropped, with a problem."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def flatten(value: Any) -> tuple[dict[str, str | None], list[str]]:
    """Dotted column paths and text values of one JSON value, and notes on what was cut."""
    out: dict[str, str | None] = {}
    notes: list[str] = []
    if not isinstance(value, dict):
        value = {"value": value}

    def walk(prefix: str, item: Any, depth: int) -> None:
        if isinstance(item, dict) and item and depth < MAX_DEPTH:
            for key, sub in item.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub, depth + 1)
        elif isinstance(item, list) and item and depth < MAX_DEPTH:
            if len(item) > MAX_LIST_ITEMS:
                notes.append(f"{prefix}: list of {len(item)} items, only the first {MAX_LIST_ITEMS} kept")
            for index, sub in enumerate(item[:MAX_LIST_ITEMS]):
                walk(f"{prefix}.{index}", sub, depth + 1)
        else:
            out[prefix] = _text(item)

    walk("", value, 0)
    return out, notes


def iter_jsonl(
    stream: IO[bytes],
    *,
    batch_rows: int,
    max_line_bytes: int,
    encoding: str | None,
    progress: Callable[[], int],
) -> Iterator[Batch]:
    """Batches of a JSON Lines stream; see the module docstring for the conventions."""
    lines = LineReader(stream, max_line_bytes=max_line_bytes, encoding=encoding)
    order: dict[str, int] = {}
    parsed: list[tuple[int, dict[str, str | None]]] = []
    problems: list[ReadProblem] = []
    dropped = False

    def flush() -> Batch:
        columns = tuple(order)
        rows = tuple((number, tuple(record.get(name) for name in columns)) for number, record in parsed)
        batch = Batch(columns=columns, rows=rows, problems=tuple(problems), bytes_read=progress())
        parsed.clear()
        problems.clear()
        return batch

    for line in lines:
        row = line.number

        def problem(message: str, column: str | None = None, row: int = row, at: int = line.offset) -> None:
            problems.append(
                ReadProblem(row=row, byte_offset=at, column=column, message=f"row {row}: {message}")
            )

        if line.text is None:
            problem(line.problem or "line too long; skipped")
            continue
        if line.problem is not None:
            problem(line.problem)
        if not line.text.strip():
            continue
        try:
            value = json.loads(line.text)
        except (ValueError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            problem(f"not a JSON value ({detail}); skipped")
            continue
        record, notes = flatten(value)
        for note in notes:
            problem(note, column=note.split(":", 1)[0])
        for key in list(record):
            if key not in order:
                if len(order) >= MAX_COLUMNS:
                    del record[key]
                    if not dropped:
                        dropped = True
                        problem(f"more than {MAX_COLUMNS} distinct columns; new ones dropped", column=key)
                    continue
                order[key] = len(order)
        parsed.append((row, record))
        if len(parsed) >= batch_rows:
            yield flush()
    if parsed or problems:
        yield flush()


def iter_text(
    stream: IO[bytes],
    *,
    batch_rows: int,
    max_line_bytes: int,
    encoding: str | None,
    progress: Callable[[], int],
) -> Iterator[Batch]:
    """Batches of a plain text stream, one line a row; ``columns`` is ``None``."""
    rows: list[tuple[int, tuple[str | None, ...]]] = []
    problems: list[ReadProblem] = []
    for line in LineReader(stream, max_line_bytes=max_line_bytes, encoding=encoding):
        if line.problem is not None:
            problems.append(
                ReadProblem(
                    row=line.number,
                    byte_offset=line.offset,
                    column=None,
                    message=f"row {line.number}: {line.problem}",
                )
            )
        if line.text is None:
            continue
        rows.append((line.number, (line.text,)))
        if len(rows) >= batch_rows:
            yield Batch(columns=None, rows=tuple(rows), problems=tuple(problems), bytes_read=progress())
            rows.clear()
            problems.clear()
    if rows or problems:
        yield Batch(columns=None, rows=tuple(rows), problems=tuple(problems), bytes_read=progress())
