"""What a redacted value becomes: the strategies and the :class:`Replacer` that applies them.

A strategy turns one match (an e-mail address, a card number...) into its replacement text:

- ``mask``: the masked form :func:`garrison.recognizers.pii.mask` shows as evidence (``j***@e***.com``);
- ``token``: the entity's type, ``[EMAIL]``, ``[CREDIT_CARD]``;
- ``drop``: nothing — the span is removed, and a value that was only the span becomes empty;
- ``hash``: a keyed pseudonym, ``email_3f9a1c2b7d0e``: the entity and the first 12 hex digits of
  HMAC-SHA256 of the entity and the normalised original under a user's key. The same original gives
  the same pseudonym in every file redacted with the same key, so joins on it still work; without
  the key the originals cannot be recovered by hashing guesses. There is no unkeyed hash.
- ``fake``: a realistic fake of the same kind (:mod:`garrison.data.redact_fake`), chosen by the
  same keyed hash, so the same original always maps to the same fake. Without a key a random one is
  drawn for the run: the mapping holds within one run only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from enum import StrEnum

from garrison.core.errors import UsageError
from garrison.data.redact_fake import FakeMaker
from garrison.recognizers.pii import mask
from garrison.recognizers.pii_types import Entity, Match

__all__ = ["MIN_KEY_BYTES", "PSEUDONYM_HEX", "Replacer", "Strategy"]

MIN_KEY_BYTES = 16
"""Shortest key accepted for ``hash`` and keyed ``fake``."""
PSEUDONYM_HEX = 12
"""Hex digits of the HMAC kept in a pseudonym (48 bits: collisions are negligible below ~10^6 values)."""
_CACHE = 100_000
_SEPARATORS = re.compile(r"[\s\-./()]")
_COMPACT = frozenset(
    {Entity.PHONE, Entity.CREDIT_CARD, Entity.IBAN, Entity.NATIONAL_ID, Entity.TAX_ID, Entity.MAC_ADDRESS}
)


class Strategy(StrEnum):
    """How a piece of personal data is replaced."""

    MASK = "mask"
    TOKEN = "token"  # noqa: S105 - the name of a strategy, not a password
    DROP = "drop"
    HASH = "hash"
    FAKE = "fake"


def normalise(entity: Entity, text: str) -> str:
    """The form that is hashed: e-mail lower-cased; numbers without separators, upper-cased."""
    if entity is Entity.EMAIL:
        return text.strip().lower()
    if entity in _COMPACT:
        return _SEPARATORS.sub("", text).upper()
    return text.strip()


class Replacer:
    """Applies a strategy per entity; keeps a bounded cache of the keyed replacements it made."""

    __slots__ = ("_cache", "_default", "_fake", "_key", "_strategies", "keyed")

    def __init__(
        self,
        strategy: Strategy | Mapping[Entity, Strategy],
        *,
        key: bytes | None = None,
        use_faker: bool | None = None,
    ) -> None:
        if isinstance(strategy, Mapping):
            self._strategies = {Entity(e): Strategy(s) for e, s in strategy.items()}
            self._default = Strategy.MASK
        else:
            self._strategies = {}
            self._default = Strategy(strategy)
        used = set(self._strategies.values()) | {self._default}
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise UsageError(
                f"the redaction key is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed",
                hint="use 32 random bytes, for example: openssl rand -hex 32",
            )
        if Strategy.HASH in used and key is None:
            raise UsageError(
                "the hash strategy needs a key: an unkeyed hash of personal data can be reversed by "
                "hashing guesses",
                hint="pass a secret key (at least 16 bytes) and keep it to pseudonymise later files alike",
            )
        self.keyed = key is not None
        """Whether the user gave the key (hash and fake mappings then hold across runs)."""
        self._key = key if key is not None else os.urandom(32)
        self._fake = FakeMaker(use_faker=use_faker) if Strategy.FAKE in used else None
        self._cache: dict[tuple[Entity, str], str] = {}

    @property
    def fake_generator(self) -> str | None:
        """``builtin`` or ``faker <version>`` when the fake strategy is in use, else ``None``."""
        return self._fake.generator if self._fake is not None else None

    def strategy(self, entity: Entity) -> Strategy:
        """The strategy for ``entity``."""
        return self._strategies.get(entity, self._default)

    def describe(self) -> dict[str, str]:
        """The strategy for every entity, by entity name."""
        return {entity.value: self.strategy(entity).value for entity in Entity}

    def replace(self, value: str, match: Match) -> str:
        """The text that takes the place of ``value[match.start:match.end]``."""
        strategy = self.strategy(match.entity)
        if strategy is Strategy.MASK:
            return mask(value, match)
        if strategy is Strategy.TOKEN:
            return f"[{match.entity.name}]"
        if strategy is Strategy.DROP:
            return ""
        original = value[match.start : match.end]
        slot = (match.entity, original)
        found = self._cache.get(slot)
        if found is not None:
            return found
        digest = hmac.new(
            self._key,
            f"{strategy.value}\x00{match.entity.value}\x00{normalise(match.entity, original)}".encode(),
            hashlib.sha256,
        ).digest()
        if strategy is Strategy.HASH:
            prefix = match.entity.value.replace("-", "_")
            made = f"{prefix}_{digest.hex()[:PSEUDONYM_HEX]}"
        else:
            assert self._fake is not None
            made = self._fake.make(match.entity, original, int.from_bytes(digest[:16], "big"))
        if len(self._cache) >= _CACHE:
            self._cache.clear()
        self._cache[slot] = made
        return made
