"""Fake values for the ``fake`` redaction strategy: realistic, harmless, and the same for the same seed.

:class:`FakeMaker` turns an entity and a seed (derived by the caller from a keyed hash of the
original) into a fake value of the same kind. The built-in generator always makes the values where
validity matters, from ranges that cannot belong to anyone:

- payment cards: 16 digits in the Visa test range ``4000 00``, with a valid Luhn check digit;
- IBANs: German ``DE`` numbers with random bank code and account and valid mod-97 check digits
  (``stdnum.iban``);
- e-mail: ``user.xxxxxx@example.com`` (RFC 2606 reserved domains);
- phones: ``+1 AAA-555-01XX`` (the North American range reserved for fiction);
- IPs: the documentation networks (RFC 5737, RFC 3849); MAC addresses: locally administered;
- ids and tax ids: random digits of the original's length; dates of birth: a random date;
- secrets: ``[SECRET]``, since a key-shaped fake would look like a leaked key to every scanner.

When Faker is importable it makes the names, postal addresses and e-mail user names instead,
seeded the same way, so they read naturally; the report says which generator was used.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from stdnum import iban as std_iban
from stdnum import luhn

from garrison.recognizers.pii_types import Entity

__all__ = ["FakeMaker"]

_FIRST = ("Alex", "Sam", "Robin", "Jamie", "Morgan", "Taylor", "Casey", "Jordan", "Riley", "Avery")
_LAST = ("Smith", "Garcia", "Müller", "Rossi", "Dubois", "Novak", "Silva", "Kowalski", "Jensen", "Brown")
_STREETS = ("Elm Street", "Oak Avenue", "Maple Road", "Cedar Lane", "Birch Way", "Pine Court")
_CITIES = ("Springfield", "Riverton", "Fairview", "Lakeside", "Greenville", "Ashford")
_DOMAINS = ("example.com", "example.org", "example.net")
_DIGIT = re.compile(r"\d")


def _faker() -> Any | None:
    try:
        from faker import Faker
    except ImportError:
        return None
    return Faker("en_US")


class FakeMaker:
    """Makes fake values; ``use_faker`` ``None`` uses Faker when it is installed.

    :attr:`generator` says which made them: ``builtin`` or ``faker <version>``.
    """

    __slots__ = ("_faker", "generator")

    def __init__(self, *, use_faker: bool | None = None) -> None:
        self._faker = _faker() if use_faker is not False else None
        if use_faker and self._faker is None:
            from garrison.core.errors import MissingExtraError

            raise MissingExtraError("fake values from Faker", extra="dev", module="faker")
        if self._faker is not None:
            import faker

            self.generator = f"faker {faker.VERSION}"
        else:
            self.generator = "builtin"

    def make(self, entity: Entity, original: str, seed: int) -> str:
        """A fake ``entity`` standing in for ``original`` (whose shape it follows where it can)."""
        rng = random.Random(seed)  # noqa: S311 - a deterministic stand-in, not a secret
        if self._faker is not None and entity in (Entity.PERSON_NAME, Entity.POSTAL_ADDRESS, Entity.EMAIL):
            self._faker.seed_instance(seed)
            if entity is Entity.PERSON_NAME:
                return str(self._faker.name())
            if entity is Entity.POSTAL_ADDRESS:
                return str(self._faker.street_address())
            user = re.sub(r"[^a-z0-9.]", "", str(self._faker.user_name()).lower()) or "user"
            return f"{user}.{rng.randrange(10_000):04d}@{rng.choice(_DOMAINS)}"
        return _builtin(entity, original, rng)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _card(rng: random.Random) -> str:
    body = "400000" + _digits(rng, 9)
    number = body + luhn.calc_check_digit(body)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    bban = _digits(rng, 18)
    return f"DE{std_iban.calc_check_digits('DE00' + bban)}{bban}"


def _same_shape(original: str, rng: random.Random) -> str:
    """Every digit of ``original`` replaced by a random one, every letter by a random capital."""
    out = [
        rng.choice(string.digits) if c.isdigit() else rng.choice(string.ascii_uppercase) if c.isalpha() else c
        for c in original
    ]
    return "".join(out)


def _builtin(entity: Entity, original: str, rng: random.Random) -> str:
    if entity is Entity.EMAIL:
        return f"user.{_digits(rng, 6)}@{rng.choice(_DOMAINS)}"
    if entity is Entity.PHONE:
        return f"+1 {rng.randrange(201, 990)}-555-01{_digits(rng, 2)}"
    if entity is Entity.CREDIT_CARD:
        return _card(rng)
    if entity is Entity.IBAN:
        return _iban(rng)
    if entity is Entity.IP_ADDRESS:
        if ":" in original:
            return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
        net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return f"{net}.{rng.randrange(1, 255)}"
    if entity is Entity.MAC_ADDRESS:
        sep = "-" if "-" in original else ":"
        return sep.join(["02", *(f"{rng.randrange(256):02x}" for _ in range(5))])
    if entity is Entity.DATE_OF_BIRTH:
        return f"{rng.randrange(1940, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if entity is Entity.PERSON_NAME:
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if entity is Entity.POSTAL_ADDRESS:
        return f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}"
    if entity is Entity.SECRET:
        return "[SECRET]"
    return _same_shape(original, rng)  # national and tax ids: random digits, the original's layout
