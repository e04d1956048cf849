"""Masking of secrets and personal data before they reach a finding, a log or a report."""

from __future__ import annotations

import hashlib


def mask(value: str, *, keep: int = 4) -> str:
    """Show at most ``keep`` leading characters and the length; never the rest.

    Short values are masked entirely, so a four-character PIN does not survive as itself.
    """
    if len(value) <= keep * 3:
        return "*" * min(len(value), 8) + f" ({len(value)} chars)"
    return f"{value[:keep]}…({len(value)} chars)"


def secret_hash(value: str) -> str:
    """A stable SHA-256 of a secret, for fingerprints and baselines that must not hold the secret."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
