"""Identify a file's format from its content, never from its name.

Sniffers run from the most specific magic number to the weakest heuristic; the first that claims
the file wins. Every read past the head goes through :class:`~garrison.formats.source.Source`,
which enforces :data:`~garrison.formats.info.READ_BUDGET`, so identifying a huge file reads only a
bounded number of bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from garrison.core.errors import GarrisonError, InputError, ResourceLimitError
from garrison.formats.archives import sniff_tar, sniff_zip
from garrison.formats.compressed import sniff_compressed
from garrison.formats.info import Identification
from garrison.formats.pickles import LEGACY_TORCH_PREFIX, sniff_pickle
from garrison.formats.protobuf import sniff_protobuf
from garrison.formats.source import Source
from garrison.formats.tensors import sniff_gguf, sniff_hdf5, sniff_numpy, sniff_parquet, sniff_safetensors
from garrison.formats.text import sniff_text

Sniffer = Callable[[Source], Identification | None]


def _legacy_torch(src: Source) -> Identification | None:
    return sniff_pickle(src) if src.head.startswith(LEGACY_TORCH_PREFIX) else None


def _framed_pickle(src: Source) -> Identification | None:
    return sniff_pickle(src) if src.head[:1] == b"\x80" else None


SNIFFERS: tuple[tuple[str, Sniffer], ...] = (
    ("pytorch-legacy", _legacy_torch),
    ("zip", sniff_zip),
    ("numpy", sniff_numpy),
    ("gguf", sniff_gguf),
    ("hdf5", sniff_hdf5),
    ("parquet", sniff_parquet),
    ("compressed", sniff_compressed),
    # safetensors before framed pickles: a header length whose low byte is 0x80 starts like a pickle,
    # while a pickle never carries a safetensors JSON header at offset 8.
    ("safetensors", sniff_safetensors),
    ("pickle", _framed_pickle),
    ("tar", sniff_tar),
    ("protobuf", sniff_protobuf),
    ("pickle-text", sniff_pickle),
    ("text", sniff_text),
    ("zip-with-prefix", partial(sniff_zip, require_magic=False)),
    ("hdf5-user-block", partial(sniff_hdf5, deep=True)),
)
"""Sniffers in the order they are tried."""


def identify(path: Path, head: bytes, size: int) -> Identification:
    """Identify the format of the file at ``path`` from its content.

    ``head`` is its first ``min(size, HEAD_BYTES)`` bytes. More of the file may be read, within a
    hard byte budget. Raises only :class:`~garrison.core.errors.GarrisonError`: ``InputError`` when
    the file cannot be read, or when a sniffer fails in a way it should not have (a bug, reported
    rather than hidden).
    """
    if size <= 0 and not head:
        return Identification(format="empty")
    src = Source(path, head, size)
    try:
        for name, sniffer in SNIFFERS:
            try:
                found = sniffer(src)
            except ResourceLimitError:
                continue
            except GarrisonError:
                raise
            except Exception as exc:
                raise InputError(
                    f"{path.name}: format identification failed in the {name} sniffer: {exc!r}",
                    hint="this is a bug in Garrison; please report it with the file if you can share it",
                ) from exc
            if found is not None:
                return found
    finally:
        src.close()
    return Identification(format="unknown")
