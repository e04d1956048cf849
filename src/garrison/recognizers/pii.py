"""Find personal data and secrets in text: e-mail, phones, cards, IBANs, ids, addresses, keys.

:class:`Scanner` runs a few cheap regexes over the text — digit runs, anchored tokens (``@``, IBAN,
letter-and-digit ids, MAC, IPv6), provider key prefixes, and context cues — and validates only the
candidates they find, with ``python-stdnum`` checksums and ``phonenumbers``. Overlapping candidates
are settled by score, so a span is reported as one entity. :func:`mask` renders a match as evidence
that keeps at most a few characters and never a secret.

The recognizers live in ``pii_numbers`` (digit runs), ``pii_text`` (tokens), ``pii_secrets`` and
``pii_context`` (dates of birth, names, addresses, column names).

Many short values (a table column) are best scanned with :meth:`Scanner.scan_many`: they are joined
with NUL, which every recognizer treats as a wall, and scanned as one text, with the same matches
as one :meth:`Scanner.scan` call per value and a fraction of the per-call cost.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
import re
from collections.abc import Iterable, Iterator, Sequence

from garrison.recognizers.pii_context import column_hints, scan_context
from garrison.recognizers.pii_find import SEP, shape
from garrison.recognizers.pii_numbers import NumberRecognizer
from garrison.recognizers.pii_plugins import Recognizer, find_with
from garrison.recognizers.pii_secrets import scan_secrets
from garrison.recognizers.pii_text import TokenRecognizer
from garrison.recognizers.pii_types import Entity, Match, moved_back

__all__ = ["DEFAULT_REGIONS", "Entity", "Match", "Scanner", "mask"]

#: Countries whose ids and phone numbering plans are recognised unless told otherwise.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "BR", "CA")
_CONTEXT_ENTITIES = frozenset({Entity.DATE_OF_BIRTH, Entity.PERSON_NAME, Entity.POSTAL_ADDRESS})
#: How many characters :meth:`Scanner.scan_many` joins into one text: large enough that the cost of a
#: scan call vanishes, small enough to keep memory flat.
_CHUNK_CHARS = 1 << 20


class Scanner:
    """Finds personal data and secrets in strings; build one and reuse it (it holds no per-text state)."""

    __slots__ = ("_context", "_entities", "_min_score", "_numbers", "_plugins", "_secrets", "_tokens")

    def __init__(
        self,
        *,
        entities: Iterable[Entity] | None = None,
        regions: Sequence[str] = DEFAULT_REGIONS,
        min_score: float = 0.5,
        recognizers: Sequence[Recognizer] = (),
    ) -> None:
        self._entities = frozenset(Entity) if entities is None else frozenset(entities)
        self._plugins = tuple(recognizers)
        wanted = tuple(r.upper() for r in regions)
        self._min_score = min_score
        self._numbers = NumberRecognizer(entities=self._entities, regions=wanted, min_score=min_score)
        self._tokens = TokenRecognizer(entities=self._entities, regions=wanted)
        self._secrets = Entity.SECRET in self._entities
        self._context = bool(_CONTEXT_ENTITIES & self._entities)

    def scan(self, text: str, *, column: str | None = None) -> list[Match]:
        """Matches in ``text`` at or above ``min_score``, by position, no two overlapping.

        ``column`` is the name of the column the value came from, if any: ``dob`` makes its dates
        dates of birth, ``first_name`` makes the value a person name, ``address`` a postal address,
        ``ssn`` / ``tax_id`` / ``phone`` vouch for numbers that would be too bare on their own.
        """
        hints = column_hints(column)
        view = shape(text)
        found: list[Match] = []
        if self._secrets:
            found.extend(scan_secrets(text, view.low))
        if view.digit:
            found.extend(self._numbers.scan(text, hints, view.low))
        found.extend(self._tokens.scan(text, hints, view))
        if self._context:
            found.extend(scan_context(text, hints, self._entities, view))
        if self._plugins:
            found.extend(self._plugin_matches(text))
        return _settle([m for m in found if m.score >= self._min_score])

    def _plugin_matches(self, text: str) -> list[Match]:
        """Plugged-in recognizers' matches, each run on one value at a time (never across a NUL)."""
        out: list[Match] = []
        pos = 0
        for part in text.split(SEP):
            if part:
                for m in find_with(self._plugins, part):
                    if m.entity in self._entities:
                        out.append(dataclasses.replace(m, start=m.start + pos, end=m.end + pos))
            pos += len(part) + 1
        return out

    def scan_many(self, texts: Sequence[str], *, column: str | None = None) -> list[list[Match]]:
        """``[self.scan(t, column=column) for t in texts]``, but faster: see :meth:`iter_matches`."""
        out: list[list[Match]] = [[] for _ in texts]
        for chunk, starts, joined in self._chunks(texts):
            if joined is None:  # a text with a NUL of its own
                out[chunk[0]] = self.scan(texts[chunk[0]], column=column)
                continue
            k, last = 0, len(starts) - 1
            for m in self.scan(joined, column=column):
                while k < last and starts[k + 1] <= m.start:
                    k += 1
                offset = starts[k]
                # the scan's matches are its own new objects: move them to the value's offsets
                out[chunk[k]].append(moved_back(m, offset) if offset else m)
        return out

    def iter_matches(
        self, texts: Sequence[str], *, column: str | None = None
    ) -> Iterator[tuple[int, str, Match]]:
        """``(i, scanned, match)`` for each match of :meth:`scan` in each of ``texts``, text by text.

        The texts are joined with a NUL character (:data:`~garrison.recognizers.pii_find.SEP`), which every
        recognizer treats as a hard boundary, and scanned a megabyte or so at a time: the same matches
        as scanning each text alone, for a few string operations per text instead of a pass of every
        recognizer. ``match`` is one of ``texts[i]``'s, with offsets into ``scanned``, the text that was
        scanned (the joined texts, or ``texts[i]`` itself): ``scanned[match.start:match.end]`` is the
        value and ``mask(scanned, match)`` its evidence. A text that holds a NUL is scanned on its own.
        """
        for chunk, starts, joined in self._chunks(texts):
            if joined is None:
                i = chunk[0]
                for m in self.scan(texts[i], column=column):
                    yield i, texts[i], m
                continue
            for m in self.scan(joined, column=column):
                yield chunk[bisect.bisect_right(starts, m.start) - 1], joined, m

    @staticmethod
    def _chunks(texts: Sequence[str]) -> Iterator[tuple[list[int], list[int], str | None]]:
        """``(indexes, offsets, joined)``: runs of texts joined with NUL, about a megabyte each.

        A text that holds a NUL comes alone, with ``joined`` None; empty texts are left out.
        """
        chunk: list[int] = []
        starts: list[int] = []
        pos = 0
        for i, text in enumerate(texts):
            if not text:
                continue
            if SEP in text:
                if chunk:
                    yield chunk, starts, SEP.join([texts[j] for j in chunk])
                    chunk, starts, pos = [], [], 0
                yield [i], [0], None
                continue
            chunk.append(i)
            starts.append(pos)
            pos += len(text) + 1
            if pos >= _CHUNK_CHARS:
                yield chunk, starts, SEP.join([texts[j] for j in chunk])
                chunk, starts, pos = [], [], 0
        if chunk:
            yield chunk, starts, SEP.join([texts[j] for j in chunk])


_BY_SPAN = operator.attrgetter("start", "end")


def _settle(found: list[Match]) -> list[Match]:
    """Keep the best of overlapping matches: highest score, then validated, then longest.

    Matches that overlap nothing are kept as they are; each cluster of overlapping ones is settled on
    its own (a choice in one cluster never touches another), so a long text costs no quadratic work.
    """
    if len(found) < 2:
        return found
    by_start = sorted(found, key=_BY_SPAN)
    kept: list[Match] = []
    cluster = [by_start[0]]
    reach = by_start[0].end
    for m in by_start[1:]:
        if m.start < reach:
            cluster.append(m)
            reach = max(reach, m.end)
            continue
        kept.extend(cluster if len(cluster) == 1 else _settle_cluster(cluster))
        cluster, reach = [m], m.end
    kept.extend(cluster if len(cluster) == 1 else _settle_cluster(cluster))
    return kept


def _settle_cluster(found: list[Match]) -> list[Match]:
    """Settle one cluster of overlapping matches, best first."""
    ranked = sorted(found, key=lambda m: (-m.score, not m.validated, m.start - m.end, m.start))
    # Kept spans never overlap, so sorted by start they are sorted by end too: a new span can only
    # overlap its two neighbours in that order (a binary search, not a scan of every kept span).
    starts: list[int] = []
    kept: list[Match] = []
    for m in ranked:
        i = bisect.bisect_left(starts, m.start)
        if i > 0 and kept[i - 1].end > m.start:
            continue
        if i < len(kept) and kept[i].start < m.end:
            continue
        starts.insert(i, m.start)
        kept.insert(i, m)
    return kept


# ---------------------------------------------------------------- masking

_ALNUM = re.compile(r"[^\W_]")
_SECRET_PREFIX = re.compile(
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|gh[pousr]_|github_pat_|xox[bpoasr]-|[sr]k_(?:live|test)_|AIza|"
    r"sk-ant-|sk-proj-|sk-svcacct-|sk-admin-|sk-|hf_|eyJ|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)
_KEEP_LAST = {
    Entity.CREDIT_CARD: 4,
    Entity.IBAN: 4,
    Entity.PHONE: 2,
    Entity.NATIONAL_ID: 2,
    Entity.TAX_ID: 2,
}


def _stars(value: str) -> str:
    return _ALNUM.sub("*", value)


def _keep_last(value: str, keep: int) -> str:
    """Star every letter and digit except the last ``keep`` of them."""
    positions = [m.start() for m in _ALNUM.finditer(value)]
    hidden = set(positions[:-keep] if keep else positions)
    return "".join("*" if i in hidden else c for i, c in enumerate(value))


def mask(value: str, match: Match) -> str:
    """Evidence for ``match`` in ``value`` that shows at most a few characters and never a secret.

    E-mail keeps the first letters of the user and domain and the top-level domain
    (``j***@e***.com``); cards and IBANs their last four characters (IBANs also the country); phones and
    ids their last two; IPs the first octet; MAC addresses the vendor prefix; a secret only the public
    prefix of its format and its length (``sk-…(51 chars)``); names, addresses and dates of birth are
    starred out but for initials.
    """
    text = value[match.start : match.end]
    entity = match.entity
    if entity is Entity.SECRET:
        prefix = _SECRET_PREFIX.match(text) if match.kind != "high-entropy" else None
        shown = prefix.group() if prefix else ""
        return f"{shown}…({len(text)} chars)"
    if entity is Entity.EMAIL:
        user, _, domain = text.rpartition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{user[:1]}***@{domain[:1]}***.{tld}"
    if entity is Entity.IBAN:
        return text[:2] + _keep_last(text[2:], 4)
    if entity in _KEEP_LAST:
        return _keep_last(text, _KEEP_LAST[entity])
    if entity is Entity.IP_ADDRESS:
        sep = ":" if ":" in text else "."
        head, _, rest = text.partition(sep)
        return head + sep + re.sub(r"[0-9A-Fa-f]", "*", rest)
    if entity is Entity.MAC_ADDRESS:
        return text[:8] + _stars(text[8:])
    if entity in {Entity.PERSON_NAME, Entity.POSTAL_ADDRESS}:
        return re.sub(r"(?<=[^\W\d_])[^\W_]|\d", "*", text)
    return _stars(text)
