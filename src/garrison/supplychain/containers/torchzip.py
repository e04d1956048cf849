"""What ``torch.load`` reads from a zip checkpoint, and where other readers would read otherwise.

PyTorch's reader (``PyTorchFileReader`` in ``caffe2/serialize/inline_container.cc``, on miniz) does,
as verified against torch 2.13 by ``tests/supplychain/containers/test_torch_semantics.py``:

* ``torch.load`` takes the zip path only when the file starts with ``PK\\x03\\x04``; otherwise it
  unpickles the file from byte 0 as a legacy checkpoint.
* miniz finds the end record from the end of the file and reads directory offsets as absolute
  positions (no adjustment for bytes before the archive, unlike Python's zipfile).
* The archive prefix is the first *central-directory* entry's name up to its first ``/``; every
  record is looked up as ``<prefix>/<name>``, case-insensitively, in a sorted directory, so with
  duplicate names which copy wins depends on the sort. Every entry must start with the prefix
  (``get_all_records`` refuses the archive otherwise).
* Local headers are used only for their signature and the lengths of name and extra field; the local
  name, method, flags, sizes and CRC are ignored. CRCs are not checked at all.
* Encrypted, strongly encrypted and patch flag bits in the directory, and methods other than stored
  and deflate, make the record unreadable; a masked directory (bit 13) makes the archive unreadable.
* ``constants.pkl`` in the record list (exact name) sends the file to ``torch.jit.load``.

Tensor storages (``data/<n>``) are raw bytes that torch never unpickles: they are never read here.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from garrison.core.errors import GarrisonError, ResourceLimitError
from garrison.core.evidence import ByteRange, Evidence, Observation
from garrison.core.rules import Rule
from garrison.formats.pickles import classify_pickle
from garrison.formats.zipreader import (
    FLAG_DATA_DESCRIPTOR,
    FLAG_ENCRYPTED,
    LOCAL_SIG,
    UNREADABLE_FLAGS,
    ByteSource,
    LocalHeader,
    ZipDirectory,
    ZipEntry,
    read_directory,
    read_local_header,
    read_member,
)
from garrison.supplychain.containers.rules import (
    TORCH_ARCHIVE_MALFORMED,
    ZIP_CRC_MISMATCH,
    ZIP_DUPLICATE_MEMBER,
    ZIP_HEADER_MISMATCH,
    ZIP_NAME_MISMATCH,
    ZIP_PREFIX_DATA,
    ZIP_UNSUPPORTED_FLAGS,
)

MAX_RECORD_BYTES = 1 << 30
"""Largest pickle or code record read into memory."""

MAX_PREFIX_BYTES = 64 * 2**20
"""Most bytes before the archive analysed as a legacy pickle stream."""

MAX_PEEKED = 1000
"""Most unnamed members whose first bytes are checked for a pickle."""

PEEK_BYTES = 4096

_SKIPPED = re.compile(
    rb"^(?:data|constants)/\d+$|^\.data/|^(?:version|byteorder|\.format_version|\.storage_alignment)$"
)
"""Records torch reads as raw bytes (tensor storages, version numbers), never as pickles."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Bytes a loader would interpret: a pickle stream or TorchScript code."""

    member: str
    """Member name as stored in the directory (or a description for bytes outside members)."""
    data: bytes
    """The bytes, uncompressed."""
    route: str
    """How a loader reaches them, for the finding's path."""
    code: bool = False
    """TorchScript source rather than a pickle."""
    max_pickles: int | None = None
    """Pickles a loader reads from the stream (``None``: as many as there are)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """A structural finding, before it is turned into a :class:`~garrison.core.findings.Finding`."""

    rule: Rule
    message: str
    member: str | None = None
    offset: int | None = None
    evidence: tuple[Evidence, ...] = ()


@dataclass(slots=True)
class ZipView:
    """Everything read from one zip checkpoint."""

    records: list[Record] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    torchscript: bool = False
    torch_loadable: bool = True

    def note(self, anomaly: Anomaly) -> None:
        """Add an anomaly unless the same rule was already reported for the same member."""
        if not any(a.rule is anomaly.rule and a.member == anomaly.member for a in self.anomalies):
            self.anomalies.append(anomaly)


def _wanted(rel: bytes) -> str | None:
    """Why a record (name after the prefix) is read: ``pickle``, ``code``, ``peek`` or ``None``."""
    low = rel.lower()
    if _SKIPPED.search(low):
        return None
    if low.endswith((b".pkl", b".debug_pkl")):
        return "pickle"
    if low.startswith(b"code/") and low.endswith(b".py"):
        return "code"
    return "peek"


def _check_local(view: ZipView, entry: ZipEntry, local: LocalHeader) -> None:
    name = entry.name
    if local.raw_name != entry.raw_name:
        view.note(
            Anomaly(
                rule=ZIP_NAME_MISMATCH,
                member=name,
                offset=local.offset,
                message=f"{name}: the local header names it {local.raw_name.decode('utf-8', 'replace')!r}; "
                "torch.load goes by the central directory",
                evidence=(
                    Observation(
                        name="local-name", actual=local.raw_name.decode("utf-8", "replace"), expected=name
                    ),
                ),
            )
        )
    differences = []
    if local.method != entry.method:
        differences.append(f"method {local.method} vs {entry.method}")
    if (local.flags ^ entry.flags) & FLAG_ENCRYPTED:
        differences.append(f"encryption bit {local.flags & 1} vs {entry.flags & 1}")
    if not local.flags & FLAG_DATA_DESCRIPTOR and (local.crc, local.compressed, local.size) != (
        entry.crc,
        entry.compressed,
        entry.size,
    ):
        differences.append("CRC or sizes")
    if differences:
        view.note(
            Anomaly(
                rule=ZIP_HEADER_MISMATCH,
                member=name,
                offset=local.offset,
                message=f"{name}: local header and directory disagree ({', '.join(differences)})",
                evidence=(Observation(name="local-header", actual="; ".join(differences)),),
            )
        )


def _read(view: ZipView, src: ByteSource, entry: ZipEntry, base: int, limit: int) -> bytes | None:
    """A member's bytes as miniz extracts them, noting every anomaly; ``None`` when unreadable."""
    name = entry.name
    if entry.flags & UNREADABLE_FLAGS or entry.method not in (0, 8):
        view.note(
            Anomaly(
                rule=ZIP_UNSUPPORTED_FLAGS,
                member=name,
                message=f"{name}: flag bits {entry.flags:#06x}, method {entry.method}; "
                "torch.load refuses to read it and its content cannot be scanned",
                evidence=(Observation(name="flags", actual=f"{entry.flags:#06x}/method {entry.method}"),),
            )
        )
        return None
    try:
        local = read_local_header(src, entry, base=base)
        _check_local(view, entry, local)
        data = read_member(src, entry, local, max_bytes=limit)
    except GarrisonError as exc:
        if isinstance(exc, ResourceLimitError):
            raise
        view.note(Anomaly(rule=TORCH_ARCHIVE_MALFORMED, member=name, message=exc.message))
        return None
    if len(data) != entry.size:
        view.note(
            Anomaly(
                rule=TORCH_ARCHIVE_MALFORMED,
                member=name,
                message=f"{name}: decompresses to {len(data)} bytes, the directory says {entry.size}",
            )
        )
    crc = zlib.crc32(data)
    if crc != entry.crc:
        view.note(
            Anomaly(
                rule=ZIP_CRC_MISMATCH,
                member=name,
                offset=local.offset,
                message=f"{name}: CRC-32 is {entry.crc:#010x} but the content's is {crc:#010x}; "
                "torch.load does not check it, Python's zipfile refuses the member",
                evidence=(Observation(name="crc32", actual=f"{crc:#010x}", expected=f"{entry.crc:#010x}"),),
            )
        )
    return data


def _duplicates(view: ZipView, entries: tuple[ZipEntry, ...]) -> None:
    seen: dict[bytes, ZipEntry] = {}
    for entry in entries:
        key = entry.raw_name.lower()
        first = seen.setdefault(key, entry)
        if first is not entry:
            view.note(
                Anomaly(
                    rule=ZIP_DUPLICATE_MEMBER,
                    member=first.name,
                    message=f"{first.name} appears more than once (entries {first.index} and {entry.index}, "
                    "names compared without case as torch does); every copy is scanned",
                    evidence=(Observation(name="duplicate", actual=entry.name, expected=first.name),),
                )
            )


def _members(
    view: ZipView, src: ByteSource, directory: ZipDirectory, base: int, label: str
) -> Iterator[Record]:
    entries = directory.entries
    if not entries:
        view.note(Anomaly(rule=TORCH_ARCHIVE_MALFORMED, message="the archive has no members"))
        return
    first = entries[0].raw_name
    slash = first.find(b"/")
    if slash < 0:
        view.torch_loadable = False
        view.note(
            Anomaly(
                rule=TORCH_ARCHIVE_MALFORMED,
                member=entries[0].name,
                message=f"the first member {entries[0].name!r} is not in a folder: torch.load refuses the "
                "archive, other readers do not",
            )
        )
    prefix = first[: slash + 1] if slash >= 0 else b""
    outside = [e for e in entries if not e.raw_name.startswith(prefix)]
    if prefix and outside:
        view.torch_loadable = False
        view.note(
            Anomaly(
                rule=TORCH_ARCHIVE_MALFORMED,
                member=outside[0].name,
                message=f"{outside[0].name!r} is outside the archive folder "
                f"{prefix.decode('utf-8', 'replace')!r}: torch.load refuses the archive; others read it",
            )
        )
    names = {e.raw_name[len(prefix) :] for e in entries if e.raw_name.startswith(prefix)}
    view.torchscript = view.torchscript or b"constants.pkl" in names
    peeked = 0
    for entry in entries:
        rel = entry.raw_name[len(prefix) :] if entry.raw_name.startswith(prefix) else entry.raw_name
        why = _wanted(rel)
        if why is None:
            continue
        if why == "peek":
            if peeked >= MAX_PEEKED or entry.flags & UNREADABLE_FLAGS or entry.method not in (0, 8):
                continue
            peeked += 1
            head = _peek(src, entry, base)
            if head is None or classify_pickle(head, complete=len(head) >= entry.size) is None:
                continue
        data = _read(view, src, entry, base, MAX_RECORD_BYTES)
        if data is None:
            continue
        route = f"{label} -> {entry.name}"
        yield Record(member=entry.name, data=data, route=route, code=why == "code")


def _peek(src: ByteSource, entry: ZipEntry, base: int) -> bytes | None:
    try:
        local = read_local_header(src, entry, base=base)
        if entry.method == 0:
            return src.read_at(local.data_offset, min(entry.size, PEEK_BYTES))
        raw = src.read_at(local.data_offset, min(entry.compressed, PEEK_BYTES))
        return zlib.decompressobj(-15).decompress(raw, PEEK_BYTES)
    except (GarrisonError, ValueError, zlib.error):
        return None


def torch_zip_view(src: ByteSource) -> ZipView:
    """Read a zip checkpoint as ``torch.load`` does, plus what lenient readers would read instead."""
    view = ZipView()
    directory = read_directory(src)
    head = src.read_at(0, 4)
    prefix = directory.prefix
    if prefix > 0:
        view.note(
            Anomaly(
                rule=ZIP_PREFIX_DATA,
                offset=0,
                message=f"{prefix} bytes before the archive; "
                + (
                    "torch.load reads the zip at absolute offsets"
                    if head == LOCAL_SIG
                    else "torch.load unpickles them as a legacy checkpoint"
                ),
                evidence=(ByteRange(start=0, end=prefix, description="bytes before the zip archive"),),
            )
        )
    views: list[tuple[int, str]] = []
    if head == LOCAL_SIG:
        views.append((0, "torch.load"))
    else:
        view.records.append(
            Record(
                member="(bytes before the archive)",
                data=src.read_at(0, min(prefix, MAX_PREFIX_BYTES)),
                route="torch.load legacy path: pickle.load from byte 0",
                max_pickles=5,
            )
        )
    if prefix > 0 or not views:
        views.append((prefix, "zip readers that skip leading bytes"))
    seen: set[tuple[str, bytes]] = set()
    _duplicates(view, directory.entries)
    for base, label in views:
        try:
            for record in _members(view, src, directory, base, label):
                key = (record.member, record.data)
                if key not in seen:
                    seen.add(key)
                    view.records.append(record)
        except GarrisonError as exc:
            if isinstance(exc, ResourceLimitError):
                raise
            view.note(Anomaly(rule=TORCH_ARCHIVE_MALFORMED, message=f"{label}: {exc.message}"))
    return view
