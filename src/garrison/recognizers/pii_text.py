"""Recognizers for structured tokens: e-mail, IBAN, letter-and-digit ids, MAC and IPv6 addresses.

Each regex is anchored on something rare (an ``@``, two capitals then two digits, a colon-joined run
of hex pairs), so a pass over ordinary text costs little; the checks that cost more (IBAN mod 97, the
check letters of Spanish and Italian ids, ``ipaddress``) run on candidates only.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from stdnum import numdb
from stdnum.es import ccc, dni, nie
from stdnum.es import iban as es_iban
from stdnum.exceptions import ValidationError
from stdnum.in_ import pan
from stdnum.it import codicefiscale
from stdnum.util import get_cc_module

from garrison.recognizers.pii_find import SEP, Shape, match_at, segment
from garrison.recognizers.pii_numbers import ID_CONTEXT, TAX_CONTEXT, near
from garrison.recognizers.pii_types import Entity, Match, new_match

EMAIL = re.compile(
    r"(?<![\w.%+\-:/])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
#: IBANs and letter-and-digit ids. The plain form is ``\b(?:(?P<iban>[A-Z]{2}\d{2}…)|(?P<cf>[A-Z]{6}…)|…)\b``;
#: it is written to start with a character class (every branch starts with a capital or a digit) and to
#: check the word boundary behind that character, so that ``re`` skips to each capital or digit at C
#: speed instead of trying the pattern at every position. Each branch checks its first character with a
#: look-behind and goes on from the second; its group holds the value but that character. The tests
#: compare the two forms.
ALNUM_ID = re.compile(
    r"[A-Z\d](?<!\w.)(?:(?<=[A-Z])(?P<iban>[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)"
    r"|(?<=[A-Z])(?P<cf>[A-Z]{5}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])"
    r"|(?<=[XYZ])(?P<nie>-?\d{7}-?[A-Z])"
    r"|(?<=\d)(?P<dni>\d{7}-?[A-Z])"
    r"|(?<=[A-CEGHJ-PR-TW-Z])(?P<nino>[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"|(?<=[A-Z])(?P<pan>[A-Z]{2}[ABCFGHJLPT][A-Z]\d{4}[A-Z]))\b"
)
#: :data:`ALNUM_ID` with its one digit-led branch (``dni``) found from its letter instead: every match
#: starts at a capital, which ``re`` skips to at C speed (a text has far more digits than capitals). A
#: Spanish DNI is found at its final letter (group ``dni8`` or ``dni9`` for the eight digits before it,
#: without or with a dash): :func:`alnum_ids` gives it its start.
_ALNUM_FROM_CAPITALS = re.compile(
    r"[A-Z](?:(?<!\w.)(?:(?<=[A-Z])(?P<iban>[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)"
    r"|(?<=[A-Z])(?P<cf>[A-Z]{5}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])"
    r"|(?<=[XYZ])(?P<nie>-?\d{7}-?[A-Z])"
    r"|(?<=[A-CEGHJ-PR-TW-Z])(?P<nino>[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"|(?<=[A-Z])(?P<pan>[A-Z]{2}[ABCFGHJLPT][A-Z]\d{4}[A-Z]))"
    r"|(?<=(?<!\w)\d{8}.)(?P<dni8>)|(?<=(?<!\w)\d{8}-.)(?P<dni9>))\b"
)
_DNI_BACK = {"dni8": 8, "dni9": 9}


def alnum_ids(text: str) -> Iterator[tuple[str, int, str]]:
    """``(kind, start, value)`` of each match of :data:`ALNUM_ID` in ``text``: its group name and span.

    A DNI starts at a digit after a non-word character and ends at its letter; no capital-led match can
    start inside it, and it counts only where it starts after the end of the match before it (where
    ``ALNUM_ID`` would look for it). The tests compare the two.
    """
    last_end = 0
    for m in _ALNUM_FROM_CAPITALS.finditer(text):
        kind = m.lastgroup
        end = m.end()
        back = _DNI_BACK.get(kind)  # type: ignore[arg-type]
        if back is None:
            yield kind, m.start(), m.group()  # type: ignore[misc]
        else:
            start = m.start() - back
            if start < last_end:
                continue
            kind = "dni"
            yield kind, start, text[start:end]
        last_end = end


MAC = re.compile(
    r"(?<![\w:\-.])(?:[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:\-]|\.\w)"
)
IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}(?![\w:])")
_NINO_INVALID_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
#: The kinds whose score an id word nearby raises.
_ID_BOOSTED = frozenset({"dni", "nie", "nino"})
#: Letters as ``int(c, 36)`` spells them, for the IBAN check digits (ISO 7064 mod 97-10).
_BASE36 = str.maketrans({c: str(int(c, 36)) for c in string.ascii_uppercase})


class TokenRecognizer:
    """E-mail, IBAN, letter-and-digit ids, MAC and IPv6; built once per scanner."""

    __slots__ = ("_entities", "_regions")

    def __init__(self, *, entities: frozenset[Entity], regions: Sequence[str]) -> None:
        self._entities = entities
        self._regions = frozenset(regions)

    def scan(self, text: str, hints: frozenset[str], view: Shape) -> Iterator[Match]:
        """Yield the matches in ``text``; ``hints`` come from the column name, ``view`` is its shape."""
        if "@" in text and Entity.EMAIL in self._entities:
            for m in _emails(text):
                yield new_match(
                    entity=Entity.EMAIL, kind="email", start=m.start(), end=m.end(), score=0.95,
                    validated=False,
                )  # fmt: skip
        if view.upper:  # every id and IBAN has two capitals, or a digit and a capital, side by side
            yield from self._alnum_ids(text, hints, view.low)
        if ":" in text or "-" in text or "." in text:
            yield from self._network(text)

    def _alnum_ids(self, text: str, hints: frozenset[str], low: str | None) -> Iterator[Match]:
        for kind, start, value in alnum_ids(text):
            if kind == "iban":
                found = _longest_valid_iban(value)
                if found and Entity.IBAN in self._entities:
                    yield new_match(
                        entity=Entity.IBAN, kind="iban", start=start, end=start + len(found), score=0.95,
                        validated=True, country=found[:2],
                    )  # fmt: skip
                continue
            # the context words count only for some kinds: look them up only for those
            id_ctx = kind in _ID_BOOSTED and ("id" in hints or near(ID_CONTEXT, text, start, low=low))
            tax_ctx = kind == "pan" and ("tax" in hints or near(TAX_CONTEXT, text, start, low=low))
            match = self._id(kind, value, start, id_ctx=id_ctx, tax_ctx=tax_ctx)
            if match is not None and match.entity in self._entities and match.country in self._regions:
                yield match

    @staticmethod
    def _id(kind: str | None, value: str, start: int, *, id_ctx: bool, tax_ctx: bool) -> Match | None:
        end = start + len(value)
        boost = 0.1 if id_ctx else 0.0
        if kind == "cf" and codicefiscale.is_valid(value):
            return new_match(entity=Entity.NATIONAL_ID, kind="it-codice-fiscale", start=start, end=end,
                         score=0.95, validated=True, country="IT")  # fmt: skip
        if kind == "dni" and dni.is_valid(value):
            return new_match(entity=Entity.NATIONAL_ID, kind="es-dni", start=start, end=end,
                         score=0.85 + boost, validated=True, country="ES")  # fmt: skip
        if kind == "nie" and nie.is_valid(value):
            return new_match(entity=Entity.NATIONAL_ID, kind="es-nie", start=start, end=end,
                         score=0.85 + boost, validated=True, country="ES")  # fmt: skip
        if kind == "nino" and value[:2] not in _NINO_INVALID_PREFIXES:
            # the NINO has no check digit: the format (valid prefix letters, suffix A-D) is all there is
            return new_match(entity=Entity.NATIONAL_ID, kind="gb-nino", start=start, end=end,
                         score=0.7 + boost, validated=False, country="GB")  # fmt: skip
        if kind == "pan" and pan.is_valid(value):
            return new_match(entity=Entity.TAX_ID, kind="in-pan", start=start, end=end,
                         score=0.75 + (0.2 if tax_ctx else 0.0), validated=True, country="IN")  # fmt: skip
        return None

    def _network(self, text: str) -> Iterator[Match]:
        if Entity.MAC_ADDRESS in self._entities:
            for start, end in mac_addresses(text):
                yield new_match(
                    entity=Entity.MAC_ADDRESS, kind="mac", start=start, end=end, score=0.85,
                    validated=False,
                )  # fmt: skip
        if Entity.IP_ADDRESS in self._entities and _v6_gate(text):
            joined = SEP in text
            for m in ipv6_candidates(text):
                try:
                    ipaddress.IPv6Address(m.group())
                except ValueError:
                    continue
                if joined and not _v6_gate(text[slice(*segment(text, m.start(), m.end()))]):
                    continue
                yield new_match(
                    entity=Entity.IP_ADDRESS, kind="ipv6", start=m.start(), end=m.end(), score=0.9,
                    validated=True,
                )  # fmt: skip


#: The two forms of MAC, each found from its first separator (``:``/``-`` or ``.``), a character class
#: ``re`` skips to at C speed, with the hex digits and the boundary before it checked by a look-behind.
_MAC_COLON = re.compile(
    r"([:\-])(?<=(?<![\w:\-.])[0-9A-Fa-f]{2}[:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:\-]|\.\w)"
)
_MAC_DOT = re.compile(r"\.(?<=(?<![\w:\-.])[0-9A-Fa-f]{4}\.)[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![\w:\-]|\.\w)")


def mac_addresses(text: str) -> list[tuple[int, int]]:
    """The spans of ``MAC.finditer(text)``.

    Two matches of MAC never overlap and never start at the same place (a match is all hex digits and
    separators, and none may follow one of those), so the matches of its two forms, each found from
    its first separator, are the matches of the pattern.
    """
    spans = (
        [(m.start() - 2, m.end()) for m in _MAC_COLON.finditer(text)] if ":" in text or "-" in text else []
    )
    if "." in text:
        dotted = [(m.start() - 4, m.end()) for m in _MAC_DOT.finditer(text)]
        if dotted:
            spans = sorted(spans + dotted)
    return spans


_HEX = frozenset("0123456789abcdefABCDEF")
_BEFORE_V6 = re.compile(r"[\w:.]")


def ipv6_candidates(text: str) -> Iterator[re.Match[str]]:
    """``IPV6.finditer(text)``, tried only at the start of each run of hex digits and colons.

    A match starts where no word character, colon or dot comes before it, and holds a colon within its
    run of hex digits and colons: so it starts at the beginning of such a run, found by walking back
    from the run's first colon over hex digits (colons are few; ``re`` would try every position).
    """
    starts = []
    c = text.find(":")
    while c >= 0:
        p = c
        while p > 0 and text[p - 1] in _HEX:
            p -= 1
        if p == 0 or not _BEFORE_V6.match(text, p - 1):  # else inside a run, or after a word or a dot
            starts.append(p)
        c = text.find(":", c + 1)
    return match_at(IPV6, text, starts)


def _v6_gate(text: str) -> bool:
    """The cheap test kept from the first version: IPv6 addresses only in text with ``::`` or 7 colons."""
    return "::" in text or text.count(":") >= 7


#: Up to and including the last character that cannot be in the user part of an address.
_LAST_NOT_LOCAL = re.compile(r"[\s\S]*[^A-Za-z0-9._%+\-]")


def _emails(text: str) -> Iterator[re.Match[str]]:
    """``EMAIL.finditer(text)``, tried only where an ``@`` is.

    A match holds one ``@``, and its user part is the whole run of user-part characters before it (any
    later start would follow such a character, which the look-behind forbids), so each ``@`` has one
    possible start.
    """
    last_end = 0
    at = text.find("@")
    while at >= 0:
        low = max(last_end, at - 64)
        cut = _LAST_NOT_LOCAL.match(text, low, at)  # the user part starts after its last non-user character
        m = EMAIL.match(text, low if cut is None else cut.end())
        if m is not None:
            last_end = m.end()
            yield m
        at = text.find("@", max(at + 1, last_end))


def _longest_valid_iban(value: str) -> str | None:
    """The longest prefix of ``value``, cut at a space, that is a valid IBAN (the regex may overreach)."""
    candidate = value
    while len(candidate) >= 15:
        if _iban_ok(candidate):
            return candidate
        cut = candidate.rfind(" ")
        if cut < 0:
            return None
        candidate = candidate[:cut]
    return None


def _iban_ok(candidate: str) -> bool:
    """``stdnum.iban.is_valid(candidate)`` for capitals, digits and spaces, without its per-call lookups.

    The same checks in the same order — mod 97-10 check digits, a country of the IBAN registry, the
    country's BBAN layout, the country's own module where ``stdnum`` has one — with the check-digit
    arithmetic done on the whole string and the registry entry looked up once per country.
    """
    number = candidate.replace(" ", "")
    if int((number[4:] + number[:4]).translate(_BASE36)) % 97 != 1:
        return False
    rule = _iban_rule(number[:2])
    if rule is None:
        return False
    bban, module = rule
    if not bban.match(number[4:]):
        return False
    if module is es_iban:
        # what ``stdnum.es.iban.validate`` adds to the checks above: the bank account's own check digits
        return ccc.is_valid(number[4:])
    if module is not None:
        try:
            module.validate(number)
        except ValidationError:
            return False
    return True


_BBAN_PART = re.compile(r"([1-9][0-9]*)!([nac])")
_BBAN_CHARS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


@cache
def _iban_rule(country: str) -> tuple[re.Pattern[str], Any] | None:
    """The BBAN layout of ``country`` as a regex and its ``stdnum`` IBAN module, or None if unknown."""
    props = numdb.get("iban").info(country)[0][1]
    if not props:
        return None
    layout = _BBAN_PART.sub(lambda m: f"{_BBAN_CHARS[m.group(2)]}{{{m.group(1)}}}", props.get("bban", ""))
    return re.compile(f"^{layout}$"), get_cc_module(country, "iban")
