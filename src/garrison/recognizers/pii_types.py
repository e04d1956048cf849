"""The vocabulary of the personal-data scanner: what was found (:class:`Entity`) and where (:class:`Match`).

Kept apart from the recognizers so that every ``pii_*`` module can import it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Entity(StrEnum):
    """A kind of personal data or secret. Finer kinds (which id, which key) go in :attr:`Match.kind`."""

    EMAIL = "email"
    PHONE = "phone"
    CREDIT_CARD = "credit-card"
    IBAN = "iban"
    NATIONAL_ID = "national-id"
    TAX_ID = "tax-id"
    IP_ADDRESS = "ip-address"
    MAC_ADDRESS = "mac-address"
    DATE_OF_BIRTH = "date-of-birth"
    POSTAL_ADDRESS = "postal-address"
    PERSON_NAME = "person-name"
    SECRET = "secret"  # noqa: S105 - the name of an entity, not a password


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One piece of personal data or one secret found in a text."""

    entity: Entity
    """What was found."""
    kind: str
    """The finer kind: ``us-ssn``, ``nl-bsn``, ``visa``, ``aws-access-key``, ``ipv6``, ``high-entropy``…"""
    start: int
    """Offset of the first character, in characters of the scanned text."""
    end: int
    """Offset one past the last character."""
    score: float
    """Confidence from 0 to 1: format, checksum and the words around the value all count."""
    validated: bool
    """A checksum or a library validation passed (Luhn, IBAN mod 97, an id's check digit, a valid phone)."""
    country: str | None = None
    """ISO 3166 country code of a national id, tax id, phone number or IBAN, when known."""


_new = object.__new__
#: The slot descriptors of Match's fields (what its ``__init__`` sets through ``object.__setattr__``).
_SLOTS = vars(Match)
_set_entity = _SLOTS["entity"].__set__
_set_kind = _SLOTS["kind"].__set__
_set_start = _SLOTS["start"].__set__
_set_end = _SLOTS["end"].__set__
_set_score = _SLOTS["score"].__set__
_set_validated = _SLOTS["validated"].__set__
_set_country = _SLOTS["country"].__set__


def new_match(
    entity: Entity, kind: str, start: int, end: int, score: float, validated: bool, country: str | None = None
) -> Match:
    """``Match(entity=entity, kind=kind, …)``, the same object, built a few times faster.

    The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` by name; this
    fills the slots through their descriptors directly. The scanner builds a match for every candidate
    that passes its checks, and again for each value of a column scanned together, so it adds up. The
    tests compare the two.
    """
    m = _new(Match)
    _set_entity(m, entity)
    _set_kind(m, kind)
    _set_start(m, start)
    _set_end(m, end)
    _set_score(m, score)
    _set_validated(m, validated)
    _set_country(m, country)
    return m


def moved_back(match: Match, by: int) -> Match:
    """``match`` with ``by`` taken off both offsets, changed in place; only for a match no one else holds.

    :meth:`~garrison.recognizers.pii.Scanner.scan_many` scans values joined into one text and hands
    each match back with offsets into its own value. Every match a scan returns is a new object that
    nothing else refers to (recognizers build them per scan, caches keep copies of their own), so it is
    moved rather than copied: two slot writes instead of a new object.
    """
    _set_start(match, match.start - by)
    _set_end(match, match.end - by)
    return match
