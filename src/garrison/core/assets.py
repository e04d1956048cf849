"""Assets: the things Garrison protects."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from garrison.core.text import WrittenOut


class AssetKind(StrEnum):
    """What sort of thing an asset is."""

    FILE = "file"
    DIRECTORY = "directory"
    MODEL = "model"
    DATASET = "dataset"
    ENDPOINT = "endpoint"
    CODEBASE = "codebase"


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset(WrittenOut):
    """A thing we protect: a model file or directory, a dataset, an endpoint, a codebase.

    Two identities serve two purposes. :attr:`key` (kind and locator) is what a finding's
    fingerprint uses, so a baseline survives an edit of the file. :attr:`digest` is the content
    identity: the store treats two files with the same digest as the same asset, wherever they lie.
    """

    kind: AssetKind
    """What sort of thing this is."""
    locator: str
    """Where it is, as the user wrote or would write it: a path relative to the scan root, a URL.
    Archive members and other names read from hostile files can carry NUL, and file names that are
    not UTF-8 carry lone surrogates; no terminal, report or database holds them, so they are written
    out (``\\x00``, ``\\xff``): see :mod:`garrison.core.text`."""
    digest: str | None = None
    """Content digest ``sha256:<hex>`` where the asset has content; ``None`` for an endpoint."""
    size: int | None = None
    """Size in bytes, where it has one."""
    format: str | None = None
    """Format identified from the content (never from the extension), for example ``pytorch-zip``."""

    @property
    def key(self) -> str:
        """Stable identity for fingerprints: kind and locator, no content."""
        return f"{self.kind.value}:{self.locator}"

    @property
    def identity(self) -> str:
        """Content identity where there is content, else :attr:`key`."""
        return self.digest or self.key
