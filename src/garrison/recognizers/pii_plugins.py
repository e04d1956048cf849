"""Recognizers that plug into the personal-data scanner: an NER model, a customer list, anything.

A recognizer is an object with an ``entities`` attribute (the :class:`Entity` kinds it reports) and a
``find(text)`` method returning :class:`Match` objects for one text. Garrison's own recognizers are
patterns and checksums; a plugged-in one adds what patterns cannot see, typically a named-entity
model for person names and places (spaCy, a transformers pipeline), or the names you already know
are personal data.

Recognizers are named by a spec ``NAME`` or ``NAME:ARG`` (``garrison.toml``: ``pii-recognizers =
["wordlist:staff.txt"]``; ``garrison scan --pii-recognizer``). ``NAME`` is looked up first among the
built-in ones, then among the ``garrison.pii_recognizers`` entry points of installed packages; the
entry point's object is called with ``ARG`` (or ``None``) and returns the recognizer. Everything a
plugin returns is checked: an entity it did not declare, an offset outside the text or an exception
raised while scanning stops the scan with an error naming the plugin (fail closed: a recognizer that
silently stops working would look like a dataset without personal data).

Built in: ``wordlist:PATH``, a UTF-8 file of names or other terms, one per line (``#`` comments,
an optional ``entity<TAB>`` prefix per line, default ``person-name``), matched as whole words,
case-insensitively, up to five words per term.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from garrison.core.errors import ConfigError, InputError
from garrison.recognizers.pii_types import Entity, Match

__all__ = [
    "ENTRY_POINT_GROUP",
    "Recognizer",
    "WordListRecognizer",
    "find_with",
    "load_recognizer",
    "load_recognizers",
]

ENTRY_POINT_GROUP = "garrison.pii_recognizers"
"""The entry point group plugins register under."""

_MAX_TERMS = 1_000_000
_MAX_WORDS = 5
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


@runtime_checkable
class Recognizer(Protocol):
    """What a plugged-in recognizer provides."""

    entities: frozenset[Entity]
    """The kinds it may report."""

    def find(self, text: str) -> Iterable[Match]:
        """Every match in ``text`` (offsets in characters of ``text``)."""
        ...


class WordListRecognizer:
    """Terms from a list, matched as whole words, case-insensitively (the ``wordlist`` recognizer)."""

    def __init__(self, terms: Iterable[tuple[Entity, str]], *, source: str = "word list") -> None:
        self._terms: dict[tuple[str, ...], Entity] = {}
        self.source = source
        for entity, term in terms:
            words = tuple(w.casefold() for w in _WORD.findall(term))
            if not words:
                continue
            if len(words) > _MAX_WORDS:
                raise ConfigError(f"{source}: the term {term!r} has more than {_MAX_WORDS} words")
            self._terms[words] = entity
            if len(self._terms) > _MAX_TERMS:
                raise ConfigError(f"{source}: more than {_MAX_TERMS:,} terms")
        self._longest = max((len(k) for k in self._terms), default=0)
        self.entities = frozenset(self._terms.values())

    @classmethod
    def from_file(cls, path: str | Path) -> WordListRecognizer:
        """Read a term list: one term per line, ``#`` comments, optional ``entity<TAB>term``."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError as exc:
            raise ConfigError(f"word list {path} not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"word list {path} cannot be read as UTF-8 text: {exc}") from exc
        terms = []
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            name, tab, term = text.partition("\t")
            if not tab:
                terms.append((Entity.PERSON_NAME, text))
                continue
            try:
                terms.append((Entity(name.strip()), term.strip()))
            except ValueError:
                known = ", ".join(e.value for e in Entity)
                raise ConfigError(
                    f"{path}:{number}: unknown entity {name.strip()!r}", hint=f"use one of {known}"
                ) from None
        return cls(terms, source=str(path))

    def find(self, text: str) -> list[Match]:
        """Whole-word, case-insensitive occurrences of the terms; the longest term wins at a position."""
        if not self._terms:
            return []
        words = [(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text)]
        found = []
        i = 0
        while i < len(words):
            for size in range(min(self._longest, len(words) - i), 0, -1):
                key = tuple(w for _, _, w in words[i : i + size])
                entity = self._terms.get(key)
                if entity is not None:
                    start, end = words[i][0], words[i + size - 1][1]
                    found.append(
                        Match(
                            entity=entity, kind="word-list", start=start, end=end, score=0.9, validated=False
                        )
                    )
                    i += size
                    break
            else:
                i += 1
        return found


def _wordlist(arg: str | None) -> WordListRecognizer:
    if not arg:
        raise ConfigError("the wordlist recognizer needs a file: wordlist:PATH")
    return WordListRecognizer.from_file(arg)


BUILTIN: dict[str, Callable[[str | None], Any]] = {"wordlist": _wordlist}
"""Recognizers that need no plugin package."""


def load_recognizer(spec: str) -> Recognizer:
    """The recognizer a ``NAME`` or ``NAME:ARG`` spec names (see the module docs)."""
    from importlib.metadata import entry_points

    name, sep, arg = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"PII recognizer {spec!r} has no name", hint="use NAME or NAME:ARG")
    factory = BUILTIN.get(name)
    if factory is None:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name == name:
                try:
                    factory = entry.load()
                except Exception as exc:
                    raise ConfigError(f"PII recognizer plugin {name!r} failed to load: {exc}") from exc
                break
    if factory is None:
        raise ConfigError(
            f"no PII recognizer named {name!r}",
            hint=f"built in: {', '.join(BUILTIN)}; others come from packages registering a "
            f"{ENTRY_POINT_GROUP} entry point",
        )
    recognizer = factory(arg if sep else None)
    if not isinstance(recognizer, Recognizer) or not all(isinstance(e, Entity) for e in recognizer.entities):
        raise ConfigError(
            f"PII recognizer plugin {name!r} did not return a recognizer (entities and find(text))"
        )
    return recognizer


def load_recognizers(specs: Sequence[str]) -> tuple[Recognizer, ...]:
    """Every recognizer in ``specs``, in order."""
    return tuple(load_recognizer(spec) for spec in specs)


def find_with(recognizers: Sequence[Recognizer], text: str) -> list[Match]:
    """The matches of every recognizer in ``text``, checked (see the module docs)."""
    found: list[Match] = []
    for recognizer in recognizers:
        label = getattr(recognizer, "source", None) or type(recognizer).__name__
        try:
            matches = list(recognizer.find(text))
        except Exception as exc:
            raise InputError(f"PII recognizer {label} failed: {type(exc).__name__}: {exc}") from exc
        for match in matches:
            if not isinstance(match, Match) or match.entity not in recognizer.entities:
                raise InputError(
                    f"PII recognizer {label} returned {match!r}, not a Match of its declared entities"
                )
            if not 0 <= match.start < match.end <= len(text):
                raise InputError(
                    f"PII recognizer {label} returned offsets {match.start}..{match.end} outside a "
                    f"text of {len(text)} characters"
                )
        found.extend(matches)
    return found
