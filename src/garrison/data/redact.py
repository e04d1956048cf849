"""Write a sanitized copy of a dataset, and a report of what was changed: ``garrison data redact``.

:func:`redact_dataset` streams a CSV, TSV, JSON Lines, plain text or Parquet file (gzip-compressed
text formats too), finds personal data and secrets in every value with the column name as context
(:mod:`garrison.recognizers.pii`), replaces each match by a :class:`~garrison.data.redact_strategies.Strategy`
and writes a file of the same format. Memory is bounded by one batch of rows (one row group for
Parquet), never by the size of the file. The output is written to a temporary file next to the
destination and renamed into place only when complete, so a failed run leaves no half-written file.

The values of one column in one batch are scanned as one text, as the profile does
(:func:`scan_values`), which keeps the per-value overhead out of the loop.

The :class:`RedactionReport` counts what changed per column and entity and shows masked examples
(:func:`garrison.recognizers.pii.mask`); it never holds an original value, a pseudonym or a fake.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.core.errors import InputError, UnsupportedFormatError, UsageError
from garrison.data.profile import KEEP_EXAMPLES, KEEP_PROBLEMS, _scan_column
from garrison.data.readers import detect_kind
from garrison.data.readers_common import ReadProblem
from garrison.data.redact_strategies import Replacer, Strategy
from garrison.recognizers.pii import Scanner, mask
from garrison.recognizers.pii_types import Entity, Match

__all__ = ["ColumnChange", "RedactionReport", "Strategy", "redact_dataset", "scan_values"]

SCHEMA_VERSION = 1
"""Version of the :meth:`RedactionReport.to_dict` layout."""


def scan_values(
    scanner: Scanner, column: str | None, values: Sequence[tuple[int, str]]
) -> list[tuple[int, str, Match]]:
    """``(key, value, match)`` for every match in ``values`` (``(key, value)`` pairs of one column).

    The values are scanned in batches (:meth:`~garrison.recognizers.pii.Scanner.scan_many`), with the same
    matches as scanning each value alone. Match offsets are relative to their own value.
    """
    return _scan_column(scanner, column, values)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnChange:
    """What was replaced in one column for one kind of personal data."""

    column: str | None
    """The column (a dotted path in JSON Lines); ``None`` for plain text."""
    entity: Entity
    """What was replaced."""
    strategy: Strategy
    """How it was replaced."""
    values: int
    """Values (cells, JSON strings, lines) changed."""
    matches: int
    """Matches replaced (a value may hold several)."""
    examples: tuple[str, ...]
    """Masked forms of the first originals (:func:`~garrison.recognizers.pii.mask`); never the value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedactionReport:
    """What :func:`redact_dataset` read, changed and wrote."""

    source: Path
    """The input file."""
    output: Path
    """The file written."""
    kind: str
    """``csv``, ``tsv``, ``jsonl``, ``parquet`` or ``text``."""
    rows_read: int
    """Rows (records, lines, JSON values) read."""
    rows_written: int
    """Rows written; fewer than read only when a row could not be read whole (see :attr:`problems`)."""
    rows_changed: int
    """Rows in which at least one value was replaced."""
    changes: tuple[ColumnChange, ...]
    """Per column and entity, in order of first change."""
    strategies: Mapping[str, str]
    """The strategy for each entity, by entity name."""
    entities: tuple[str, ...]
    """The entities that were looked for."""
    dropped_columns: tuple[str, ...]
    """Columns removed whole."""
    unscanned_columns: tuple[str, ...]
    """Columns copied unscanned because their values are not text (Parquet numbers, lists, binary)."""
    keyed: bool
    """Whether a user key was given: hash and fake replacements are then the same in every run."""
    fake_generator: str | None
    """``builtin`` or ``faker <version>`` when fake values were used."""
    problems: tuple[ReadProblem, ...]
    """The first read problems; rows that could not be read are not written."""
    problem_count: int
    """All read problems."""
    bytes_read: int
    """Bytes of the input consumed."""
    bytes_written: int
    """Size of the output."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``schema_version`` first)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "source": str(self.source),
            "output": str(self.output),
            "kind": self.kind,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_changed": self.rows_changed,
            "values_changed": sum(c.values for c in self.changes),
            "changes": [
                {
                    "column": c.column,
                    "entity": c.entity.value,
                    "strategy": c.strategy.value,
                    "values": c.values,
                    "matches": c.matches,
                    "examples": list(c.examples),
                }
                for c in self.changes
            ],
            "strategies": dict(self.strategies),
            "entities": list(self.entities),
            "dropped_columns": list(self.dropped_columns),
            "unscanned_columns": list(self.unscanned_columns),
            "keyed": self.keyed,
            "fake_generator": self.fake_generator,
            "problems": [
                {"row": p.row, "byte_offset": p.byte_offset, "column": p.column, "message": p.message}
                for p in self.problems
            ],
            "problem_count": self.problem_count,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
        }


@dataclass(slots=True)
class _Tally:
    values: int = 0
    matches: int = 0
    examples: list[str] = field(default_factory=list)


class ValueRedactor:
    """Redacts the values of one column at a time and keeps the tallies (used by the format writers)."""

    def __init__(
        self,
        scanner: Scanner,
        replacer: Replacer,
        *,
        entities: frozenset[Entity] | None,
        columns: frozenset[str] | None,
    ) -> None:
        self.scanner = scanner
        self.replacer = replacer
        self.entities = entities
        self.columns = columns
        self.tallies: dict[tuple[str | None, Entity], _Tally] = {}
        self.rows_read = 0
        self.rows_written = 0
        self.rows_changed = 0
        self.bytes_read = 0
        self.problems: list[ReadProblem] = []
        self.problem_count = 0
        self.unscanned: dict[str, None] = {}

    def wanted(self, column: str | None) -> bool:
        """Whether ``column`` is redacted (``columns`` names it, or a JSON object above it)."""
        if self.columns is None or column is None:
            return True
        return column in self.columns or any(column.startswith(c + ".") for c in self.columns)

    def add_problems(self, problems: Iterable[ReadProblem]) -> None:
        """Keep the first read problems and count them all."""
        for problem in problems:
            self.problem_count += 1
            if len(self.problems) < KEEP_PROBLEMS:
                self.problems.append(problem)

    def column(self, column: str | None, values: Sequence[str | None]) -> tuple[list[str | None], set[int]]:
        """The values with every match replaced, and the positions of those that changed."""
        out = list(values)
        if not self.wanted(column):
            return out, set()
        present = [(i, v) for i, v in enumerate(values) if v]
        if not present:
            return out, set()
        per_value: dict[int, list[Match]] = {}
        for index, value, match in scan_values(self.scanner, column, present):
            if self.entities is not None and match.entity not in self.entities:
                continue
            per_value.setdefault(index, []).append(match)
            tally = self.tallies.get((column, match.entity))
            if tally is None:
                tally = self.tallies[(column, match.entity)] = _Tally()
            tally.matches += 1
            if len(tally.examples) < KEEP_EXAMPLES:
                shown = mask(value, match)
                if shown not in tally.examples:
                    tally.examples.append(shown)
        for index, matches in per_value.items():
            text = values[index]
            assert text is not None
            pieces: list[str] = []
            last = 0
            seen: set[Entity] = set()
            for match in sorted(matches, key=lambda m: m.start):
                pieces.append(text[last : match.start])
                pieces.append(self.replacer.replace(text, match))
                last = match.end
                if match.entity not in seen:
                    seen.add(match.entity)
                    self.tallies[(column, match.entity)].values += 1
            pieces.append(text[last:])
            out[index] = "".join(pieces)
        return out, set(per_value)

    def changes(self) -> tuple[ColumnChange, ...]:
        """The tallies, frozen."""
        return tuple(
            ColumnChange(
                column=column,
                entity=entity,
                strategy=self.replacer.strategy(entity),
                values=t.values,
                matches=t.matches,
                examples=tuple(t.examples),
            )
            for (column, entity), t in self.tallies.items()
        )


def _check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    if not src.is_file():
        raise InputError(f"{src}: no such file")
    same = src.resolve() == dst.resolve()
    if not same and dst.exists():
        try:
            same = os.path.samefile(src, dst)
        except OSError:
            same = False
    if same:
        raise UsageError(f"{dst}: the output is the input", hint="write the sanitized copy to another file")
    if dst.exists() and not overwrite:
        raise UsageError(f"{dst}: already exists", hint="choose another name, or allow overwriting (--force)")
    if dst.is_dir():
        raise UsageError(f"{dst}: is a directory")


def redact_dataset(
    src: Path,
    dst: Path,
    *,
    strategy: Strategy | Mapping[Entity, Strategy] = Strategy.MASK,
    key: bytes | None = None,
    entities: Collection[Entity] | None = None,
    columns: Collection[str] | None = None,
    drop_columns: Collection[str] = (),
    scanner: Scanner | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
    kind: str | None = None,
    batch_rows: int = 5_000,
    use_faker: bool | None = None,
) -> RedactionReport:
    """Write a copy of the dataset ``src`` to ``dst`` with personal data and secrets replaced.

    ``strategy`` is one strategy for every entity, or a mapping from entity to strategy (entities it
    does not name are masked). ``key`` is the secret for ``hash`` (required) and ``fake`` (optional:
    without it fakes hold for this run only). ``entities`` limits what is looked for, ``columns``
    what is redacted (other columns are copied); ``drop_columns`` are removed whole. ``kind`` is
    detected when ``None``. ``progress`` is called with the input bytes consumed after each batch.
    ``use_faker`` ``None`` uses Faker for fake names, addresses and e-mail when it is installed.

    Raises :class:`UsageError` for arguments that cannot work (``dst`` is ``src``, ``dst`` exists
    and ``overwrite`` is false, ``hash`` without a key, an unknown column to drop) and
    :class:`InputError` when ``src`` cannot be read at all. Rows that cannot be read are reported
    in :attr:`RedactionReport.problems` and are not written.
    """
    from garrison.data import redact_formats

    src, dst = Path(src), Path(dst)
    _check_paths(src, dst, overwrite)
    replacer = Replacer(strategy, key=key, use_faker=use_faker)
    wanted = frozenset(Entity(e) for e in entities) if entities is not None else None
    if scanner is None:
        scanner = Scanner(entities=wanted) if wanted is not None else Scanner()
    redactor = ValueRedactor(
        scanner, replacer, entities=wanted, columns=frozenset(columns) if columns is not None else None
    )
    kind = kind or detect_kind(src)
    dropped = tuple(dict.fromkeys(drop_columns))
    if dropped and kind == "text":
        raise UsageError(f"{src}: plain text has no columns to drop")
    writer = redact_formats.WRITERS.get(kind)
    if writer is None:
        raise UnsupportedFormatError(
            f"{src}: cannot redact {kind.replace('-', ' ')} data",
            hint="redaction writes CSV, JSON Lines, Parquet and plain text; "
            "image metadata is found by `garrison scan data`",
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        writer(
            src,
            tmp,
            redactor,
            compress=dst.name.lower().endswith(".gz"),
            drop=dropped,
            batch_rows=batch_rows,
            progress=progress,
        )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        written = tmp.stat().st_size
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return RedactionReport(
        source=src,
        output=dst,
        kind=kind,
        rows_read=redactor.rows_read,
        rows_written=redactor.rows_written,
        rows_changed=redactor.rows_changed,
        changes=redactor.changes(),
        strategies=replacer.describe(),
        entities=tuple(e.value for e in Entity if wanted is None or e in wanted),
        dropped_columns=dropped,
        unscanned_columns=tuple(redactor.unscanned),
        keyed=replacer.keyed,
        fake_generator=replacer.fake_generator,
        problems=tuple(redactor.problems),
        problem_count=redactor.problem_count,
        bytes_read=redactor.bytes_read,
        bytes_written=written,
    )
