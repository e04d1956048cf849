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
