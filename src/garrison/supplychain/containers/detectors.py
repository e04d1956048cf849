"""Detectors for model containers: PyTorch checkpoints, NumPy files and compressed joblib files."""

from __future__ import annotations

import io
import mmap
import re
import zlib
from collections.abc import Iterator
from typing import ClassVar

from garrison.core.errors import InputError
from garrison.core.evidence import Observation, OpcodeRef, TextSpan
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.formats.streams import sniff_compression
from garrison.formats.zipreader import FileSource, read_directory
from garrison.supplychain.containers.legacy import STREAM_PICKLES, legacy_tar_members, record_pickles
from garrison.supplychain.containers.npjob import joblib_pickle, npy_pickle, npz_members
from garrison.supplychain.containers.pickles import pickle_rules, scan_pickles
from garrison.supplychain.containers.rules import (
    NPY_MALFORMED,
    NPZ_MEMBER_TAMPERED,
    NUMPY_RULES,
    PYTORCH_RULES,
    TORCHSCRIPT_CODE_EXECUTION,
)
from garrison.supplychain.containers.torchscript import dangerous_calls
from garrison.supplychain.containers.torchzip import Anomaly, torch_zip_view
from garrison.supplychain.whole import whole_file

MAX_RAW_BYTES = 1 << 30
"""Largest NumPy object array read into memory."""


def _pickle_rules() -> tuple[Rule, ...]:
    try:
        return pickle_rules()
    except ImportError:  # the pickle engine is not installed in this build
        return ()


_TORCHSCRIPT_BUILTIN = re.compile(
    r"^(?:__torch__\.[\w.]+|torch\.jit\._pickle\.(?:build_\w+|restore_type_tag))$"
)
"""Globals ``torch.jit.load``'s own unpickler resolves to compiled TorchScript types or to builders
that return their argument; it imports no Python for them (and refuses any other global)."""


def _torchscript_builtin(finding: Finding) -> bool:
    """Whether every global a finding names is one TorchScript's unpickler resolves without Python."""
    names = [e.argument for e in finding.evidence if isinstance(e, OpcodeRef) and e.argument]
    return (
        bool(names)
        and finding.rule.id in {"GAR-PKL-001", "GAR-PKL-002"}
        and all(_TORCHSCRIPT_BUILTIN.match(n) for n in names)
    )


def _size(target: FileTarget) -> int:
    if target.asset.size is not None:
        return target.asset.size
    try:
        return target.path.stat().st_size
    except OSError as exc:
        raise InputError(f"{target.path}: cannot be read ({exc.strerror})") from None


class _ContainerDetector(FileDetector):
    def _anomaly(self, target: FileTarget, anomaly: Anomaly) -> Finding:
        return Finding.create(
            rule=anomaly.rule,
            asset=target.asset,
            message=anomaly.message,
            detector=self.name,
            location=Location(member=anomaly.member, offset=anomaly.offset),
            evidence=anomaly.evidence,
        )

    def _pickles(
        self,
        target: FileTarget,
        data: bytes | memoryview | mmap.mmap,
        member: str | None,
        route: str,
        max_pickles: int | None = None,
        *,
        trailing: bool = False,
    ) -> list[Finding]:
        return scan_pickles(
            data,
            asset=target.asset,
            detector=self.name,
            member=member,
            route=route,
            max_pickles=max_pickles,
            expected=max_pickles or 1,
            allow_trailing=trailing,
        )


class PyTorchCheckpoint(_ContainerDetector):
    """Reads PyTorch checkpoints the way ``torch.load`` does and scans every pickle it would run.

    Zip checkpoints are read through the central directory at absolute offsets, records found by
    the first member's folder, case-insensitively, CRCs ignored (GAR-PT-101 to GAR-PT-107 report
    where other readers would differ); every ``.pkl`` member and every member that looks like a
    pickle is analysed, tensor storages are never read. TorchScript code is searched for
    operations that reach files, libraries or the evaluator (GAR-PT-001). Legacy checkpoints: all
    five pickles of the magic-number stream, or the pickles of the tar layout.
    """

    name: ClassVar[str] = "pytorch-checkpoint"
    summary: ClassVar[str] = "Scans PyTorch zip, legacy and TorchScript checkpoints as torch.load reads them."
    formats: ClassVar[frozenset[str]] = frozenset({"pytorch-zip", "torchscript", "pytorch-legacy", "zip"})
    rules: ClassVar[tuple[Rule, ...]] = (*PYTORCH_RULES, *_pickle_rules())

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one checkpoint."""
        if target.asset.format == "pytorch-legacy":
            yield from self._legacy(target)
            return
        whole = whole_file(target)
        with target.open() if whole is None else io.BytesIO(whole) as handle:
            src = FileSource(handle, _size(target))
            if target.asset.format == "zip":
                names = [e.raw_name.lower() for e in read_directory(src).entries]
                if not any(n.endswith((b"/data.pkl", b"/constants.pkl")) for n in names):
                    return  # torch.load would not find a pickle here
            view = torch_zip_view(src)
        for anomaly in view.anomalies:
            yield self._anomaly(target, anomaly)
        for record in view.records:
            if record.code:
                for hit in dangerous_calls(record.data):
                    yield Finding.create(
                        rule=TORCHSCRIPT_CODE_EXECUTION,
                        asset=target.asset,
                        detector=self.name,
                        message=f"{record.member}: TorchScript code {hit.what}: {hit.excerpt}",
                        location=Location(member=record.member),
                        evidence=(TextSpan(start=hit.start, end=hit.end, excerpt=hit.excerpt),),
                    )
            else:
                findings = self._pickles(
                    target,
                    record.data,
                    record.member,
                    record.route,
                    record.max_pickles,
                    trailing=record.max_pickles is not None,
                )
                yield from (f for f in findings if not (view.torchscript and _torchscript_builtin(f)))

    def _legacy(self, target: FileTarget) -> Iterator[Finding]:
        if ("layout", "tar") in target.details:
            with target.open() as handle:
                members = list(legacy_tar_members(handle))
            for name, data in members:
                spans = [(0, len(data))] if name == "pickle" else record_pickles(name, data)
                for start, end in spans:
                    yield from self._pickles(
                        target, data[start:end], name, f"torch.load legacy tar -> {name}"
                    )
            return
        if _size(target) == 0:
            return
        with (
            target.path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        ):
            findings = self._pickles(
                target,
                mapped,
                None,
                "torch.load legacy stream (magic, version, sys info, object, keys)",
                STREAM_PICKLES,
                trailing=True,
            )
        yield from findings


class PickleContainers(_ContainerDetector):
    """Finds the pickles inside NumPy object arrays (``.npy``, ``.npz``) and compressed joblib files.

    Decompression is streamed and bounded (output bytes and ratio). Broken NumPy headers are
    GAR-NPY-101; npz members whose CRC, name or copy count is off are GAR-NPY-102. The pickles
    themselves get the pickle engine's findings.
    """

    name: ClassVar[str] = "pickle-containers"
    summary: ClassVar[str] = (
        "Scans pickles inside NumPy object arrays, npz archives and compressed joblib files."
    )
    formats: ClassVar[frozenset[str]] = frozenset({"numpy-object", "numpy-npz", "numpy-npz-object", "joblib"})
    rules: ClassVar[tuple[Rule, ...]] = (*NUMPY_RULES, *_pickle_rules())

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one NumPy or joblib file."""
        fmt = target.asset.format
        if fmt == "joblib":
            yield from self._joblib(target)
        elif fmt == "numpy-object":
            with target.open() as handle:
                data = handle.read(MAX_RAW_BYTES)
            yield from self._npy(target, data, None)
        else:
            yield from self._npz(target)

    def _npy(self, target: FileTarget, data: bytes, member: str | None) -> Iterator[Finding]:
        payload, broken = npy_pickle(data)
        if broken:
            yield Finding.create(
                rule=NPY_MALFORMED,
                asset=target.asset,
                detector=self.name,
                message=f"{member or target.asset.locator}: {broken}",
                location=Location(member=member),
                evidence=(Observation(name="npy-header", actual=broken),),
            )
        if payload is not None:
            route = "numpy.load(allow_pickle=True) -> pickle.load"
            yield from self._pickles(target, payload, member, route, 1, trailing=True)

    def _npz(self, target: FileTarget) -> Iterator[Finding]:
        with target.open() as handle:
            members = list(npz_members(FileSource(handle, _size(target))))
        seen: set[bytes] = set()
        for entry, data, problem in members:
            issues = []
            if entry.raw_name in seen:
                issues.append("appears more than once; numpy reads the last copy")
            seen.add(entry.raw_name)
            if problem:
                issues.append(f"cannot be read ({problem})")
            elif data is not None and zlib.crc32(data) != entry.crc:
                issues.append("CRC-32 does not match its content; its pickle runs before zipfile notices")
            for issue in issues:
                yield Finding.create(
                    rule=NPZ_MEMBER_TAMPERED,
                    asset=target.asset,
                    detector=self.name,
                    message=f"{entry.name}: {issue}",
                    location=Location(member=entry.name),
                    evidence=(Observation(name="npz-member", actual=issue),),
                )
            if data is not None and data.startswith(b"\x93NUMPY"):
                yield from self._npy(target, data, entry.name)

    def _joblib(self, target: FileTarget) -> Iterator[Finding]:
        head = target.head
        start = 0
        if head.startswith(b"ZF0x"):
            start = max(head.find(b"x", 4, 64), 0)
        kind = sniff_compression(head[start:])
        if kind is None:
            return  # an uncompressed joblib file is a pickle stream: the pickle scanner reads it
        with target.open() as handle:
            handle.seek(start)
            data = joblib_pickle(handle.read, kind)
        yield from self._pickles(target, data, None, f"joblib.load -> {kind} -> pickle")
