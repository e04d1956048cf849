"""Legacy PyTorch checkpoints: the magic-number pickle stream and the older tar layout.

``torch.load`` on a file that is not a zip first tries :mod:`tarfile`; a tar with ``storages``,
``tensors`` and ``pickle`` members is read by unpickling the count and one argument tuple per
storage or tensor (raw bytes in between) and then the ``pickle`` member. Anything else is read as a
stream of pickles: the magic number, the protocol version, the system info, the object itself and
the list of storage keys, in that order, each unpickled before the next is even looked at, so a
payload in any of the five runs. Storage bytes follow and are never read as pickles.
"""

from __future__ import annotations

import posixpath
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from garrison.core.errors import InputError, ResourceLimitError
from garrison.supplychain.containers.pickles import analyses_of

STREAM_PICKLES = 5
"""Pickles ``torch.load`` reads from a legacy stream before the raw storages."""

MAX_TAR_MEMBERS = 10_000
MAX_MEMBER_BYTES = 1 << 30
MAX_RECORDS = 100_000
"""Most storage or tensor records walked in a legacy tar member."""

_TAR_MEMBERS = ("pickle", "storages", "tensors")


@dataclass(frozen=True, slots=True, kw_only=True)
class TarRecord:
    """Pickle bytes from a legacy tar member, with how many leading pickles torch reads."""

    member: str
    data: bytes
    max_pickles: int | None


def legacy_tar_members(handle: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """Every member named ``pickle``, ``storages`` or ``tensors`` (after normalising, all copies)."""
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for count, info in enumerate(iter(tar.next, None)):
                if count >= MAX_TAR_MEMBERS:
                    raise ResourceLimitError(
                        f"more than {MAX_TAR_MEMBERS} tar members", limit="tar-members", value=MAX_TAR_MEMBERS
                    )
                name = posixpath.normpath(info.name)
                if name not in _TAR_MEMBERS or not info.isfile():
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise ResourceLimitError(
                        f"tar member {name!r} is {info.size} bytes", limit="member-bytes", value=info.size
                    )
                extracted = tar.extractfile(info)
                if extracted is not None:
                    yield name, extracted.read(MAX_MEMBER_BYTES)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise InputError(f"legacy PyTorch tar cannot be read ({str(exc)[:120]})") from None


def _pickle_end(data: bytes, start: int) -> int | None:
    """Offset just after the pickle starting at ``start``, or ``None`` when it is broken."""
    found = analyses_of(memoryview(data)[start:], max_pickles=1)
    if not found or getattr(found[0], "malformed", None):
        return None
    return start + int(found[0].end)


def record_pickles(name: str, data: bytes) -> list[tuple[int, int]]:
    """Spans of the pickles torch reads from a legacy ``storages`` or ``tensors`` member.

    Layout: a pickled count, then per record a pickled argument tuple followed by raw bytes (a
    storage: an int64 element count and the elements; a tensor: ndim, padding, sizes, strides and
    offset). The element size of a storage is not known without evaluating the tuple, so each
    plausible size is tried and kept where the next record starts with a pickle or the data ends.
    """
    spans: list[tuple[int, int]] = []
    end = _pickle_end(data, 0)
    if end is None:
        return [(0, len(data))]
    spans.append((0, end))
    pos = end
    while pos < len(data) and len(spans) < MAX_RECORDS:
        end = _pickle_end(data, pos)
        if end is None:
            spans.append((pos, len(data)))
            break
        spans.append((pos, end))
        after = _skip_raw(name, data, end)
        if after is None:
            spans.append((end, len(data)))  # the views pickle, or trailing bytes: analyse the rest
            break
        pos = after
    return spans


def _skip_raw(name: str, data: bytes, pos: int) -> int | None:
    if name == "tensors":
        if pos + 8 > len(data):
            return None
        ndim: int = struct.unpack_from("<i", data, pos)[0]
        if not 0 <= ndim <= 64:
            return None
        nxt = pos + 8 + 16 * ndim + 8
        return nxt if nxt <= len(data) else None
    if pos + 8 > len(data):
        return None
    count: int = struct.unpack_from("<q", data, pos)[0]
    for size in (4, 8, 2, 1, 16):
        nxt = pos + 8 + count * size
        if count >= 0 and (nxt == len(data) or (nxt < len(data) and data[nxt] == 0x80)):
            return nxt
    return None
