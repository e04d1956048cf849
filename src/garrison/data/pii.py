"""Find personal data and secrets in text: e-mail, phones, cards, IBANs, ids, addresses, keys.

:class:`Scanner` runs a few cheap regexes over the text — digit runs, anchored tokens (``@``, IBAN,
letter-and-digit ids, MAC, IPv6), provider key prefixes, and context cues — and validates only the
candidates they find, with ``python-stdnum`` checksums and ``phonenumbers``. Overlapping candidates
are settled by score, so a span is reported as one entity. :func:`mask` renders a match as evidence
that keeps at most a few characters and never a secret.

The recognizers live in ``pii_numbers`` (digit runs), ``pii_text`` (tokens), ``pii_secrets`` and
``pii_context`` (dates of birth, names, addresses, column names).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from garrison.data.pii_context import column_hints, scan_context
from garrison.data.pii_numbers import NumberRecognizer
from garrison.data.pii_secrets import scan_secrets
from garrison.data.pii_text import TokenRecognizer
from garrison.data.pii_types import Entity, Match

__all__ = ["DEFAULT_REGIONS", "Entity", "Match", "Scanner", "mask"]

#: Countries whose ids and phone numbering plans are recognised unless told otherwise.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "BR", "CA")
_CONTEXT_ENTITIES = frozenset({Entity.DATE_OF_BIRTH, Entity.PERSON_NAME, Entity.POSTAL_ADDRESS})
_HAS_DIGIT = re.compile(r"\d")


class Scanner:
    """Finds personal data and secrets in strings; build one and reuse it (it holds no per-text state)."""

    __slots__ = ("_context", "_entities", "_min_score", "_numbers", "_secrets", "_tokens")

    def __init__(
        self,
        *,
        entities: Iterable[Entity] | None = None,
        regions: Sequence[str] = DEFAULT_REGIONS,
        min_score: float = 0.5,
    ) -> None:
        self._entities = frozenset(Entity) if entities is None else frozenset(entities)
        wanted = tuple(r.upper() for r in regions)
        self._min_score = min_score
        self._numbers = NumberRecognizer(entities=self._entities, regions=wanted)
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
        found: list[Match] = []
        if self._secrets:
            found.extend(scan_secrets(text))
        if _HAS_DIGIT.search(text) is not None:
            found.extend(self._numbers.scan(text, hints))
        found.extend(self._tokens.scan(text, hints))
        if self._context:
            found.extend(scan_context(text, hints, self._entities))
        return _settle([m for m in found if m.score >= self._min_score])


def _settle(found: list[Match]) -> list[Match]:
    """Keep the best of overlapping matches: highest score, then validated, then longest.

    Matches that overlap nothing are kept as they are; each cluster of overlapping ones is settled on
    its own (a choice in one cluster never touches another), so a long text costs no quadratic work.
    """
    if len(found) < 2:
        return found
    by_start = sorted(found, key=lambda m: (m.start, m.end))
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
