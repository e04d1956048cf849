"""Keras scanners: the Keras 3 ``.keras`` zip and the legacy HDF5 (``.h5``) model file.

``.keras``: ``config.json`` is read from the zip (every member of that name: the loader takes the
last, a reviewer may see the first) within a size limit and parsed strictly.

``.h5``: Keras keeps its model config as JSON text in the root group's ``model_config`` attribute
(and the compile settings in ``training_config``). h5py writes these as variable-length strings,
whose bytes sit verbatim in an HDF5 global heap. Rather than walk superblock, object headers,
attribute messages and heap collections (several layouts, each a parser of its own to get wrong),
the scanner searches the file, within a byte limit, for every place where a JSON object starts
(``{`` then a quoted key and a colon) and decodes each with a bounded strict decoder; every object
that looks like a Keras config is analysed. This finds the config wherever the file puts it, also
when a decoy config sits next to the real one or the keys are written with JSON escapes, and it
reads no more than the limit.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.core.errors import InputError
from garrison.core.evidence import ByteRange, Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.supplychain.formats_extra.common import file_name, finding, mapped, short
from garrison.supplychain.formats_extra.strictjson import JsonProblemError, loads_strict
from garrison.supplychain.keras.config import ConfigIssue, analyse_config
from garrison.supplychain.keras.rules import CONFIG_LIMIT, MALFORMED_CONFIG, RULES

MAX_CONFIG_BYTES = 64 * 2**20
"""Largest config JSON parsed."""

MAX_MEMBERS = 100_000
"""Most zip members listed in a ``.keras`` archive."""

H5_SCAN_BYTES = 512 * 2**20
"""Bytes of an HDF5 file searched for configs."""

MAX_CANDIDATES = 20_000
"""Most JSON start candidates tried in one HDF5 file."""

_JSON_START = re.compile(rb'\{\s*"(?:[^"\\\x00-\x1f]|\\.){1,128}"\s*:')
_KERAS_KEYS = frozenset({"class_name", "module", "keras_version", "backend"})


def _issue_finding(detector: str, target: FileTarget, issue: ConfigIssue, member: str | None) -> Finding:
    return finding(
        detector,
        issue.rule,
        target,
        f"{file_name(target)}: {issue.message}",
        (Observation(name=issue.path, actual=issue.actual),),
        location=Location(member=member) if member else None,
        severity=issue.severity,
    )


class _ArchiveScan:
    """Keras 3 ``.keras`` archives: config.json for Lambda bytecode and module gadgets."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one ``.keras`` archive."""
        try:
            with zipfile.ZipFile(target.path) as archive:
                infos = archive.infolist()
                if len(infos) > MAX_MEMBERS:
                    yield self._limit(target, f"the archive lists {len(infos)} members")
                    return
                configs = [info for info in infos if info.filename == "config.json"]
                if not configs:
                    yield finding(
                        self.name, MALFORMED_CONFIG, target, f"{file_name(target)} has no config.json."
                    )
                    return
                if len(configs) > 1:
                    yield finding(
                        self.name,
                        MALFORMED_CONFIG,
                        target,
                        f"{file_name(target)} holds config.json {len(configs)} times; Keras reads the "
                        "last, other tools may read the first.",
                        (Observation(name="config.json members", actual=str(len(configs)), expected="1"),),
                    )
                for info in configs:
                    if info.file_size > MAX_CONFIG_BYTES:
                        yield self._limit(target, f"config.json is {info.file_size} bytes")
                        continue
                    with archive.open(info) as handle:
                        data = handle.read(MAX_CONFIG_BYTES + 1)
                    yield from self._config(target, data)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            NotImplementedError,
            RuntimeError,
            EOFError,
            ValueError,  # includes UnicodeDecodeError for member names flagged UTF-8 that are not
            OverflowError,
            struct.error,
        ) as exc:
            yield finding(
                self.name,
                MALFORMED_CONFIG,
                target,
                f"{file_name(target)} is not a readable zip archive: {short(str(exc))}.",
            )
        except (OSError, zlib.error) as exc:
            raise InputError(f"{target.path}: cannot be read as a zip ({exc})") from None

    def _config(self, target: FileTarget, data: bytes) -> Iterator[Finding]:
        try:
            parsed = loads_strict(data, max_bytes=MAX_CONFIG_BYTES)
        except JsonProblemError as exc:
            yield finding(
                self.name,
                MALFORMED_CONFIG,
                target,
                f"{file_name(target)}: config.json is rejected by a strict parser: {exc}.",
                location=Location(member="config.json"),
            )
            return
        if parsed.duplicates:
            yield finding(
                self.name,
                MALFORMED_CONFIG,
                target,
                f"{file_name(target)}: config.json repeats keys in one object "
                f"({', '.join(short(k, 40) for k in parsed.duplicates[:5])}).",
                (Observation(name="duplicate-keys", actual=",".join(parsed.duplicates[:5])),),
                location=Location(member="config.json"),
            )
        for issue in analyse_config(parsed.value):
            yield _issue_finding(self.name, target, issue, "config.json")

    def _limit(self, target: FileTarget, what: str) -> Finding:
        return finding(self.name, CONFIG_LIMIT, target, f"{file_name(target)}: {what}; not scanned.")


def _decode_at(view: Any, start: int, end: int) -> tuple[Any, int] | None:
    """The JSON object starting at ``start`` and where it ends, growing the window as needed."""
    window = 1 << 16
    decoder = json.JSONDecoder()
    while True:
        stop = min(start + window, end, start + MAX_CONFIG_BYTES)
        text = bytes(view[start:stop]).decode("utf-8", "surrogateescape")
        try:
            value, used = decoder.raw_decode(text)
        except RecursionError:
            return None
        except json.JSONDecodeError as exc:
            if exc.pos >= len(text) - 8 and stop < min(end, start + MAX_CONFIG_BYTES):
                window *= 4
                continue
            return None
        return value, start + len(text[:used].encode("utf-8", "surrogateescape"))


class _Hdf5Scan:
    """Legacy Keras HDF5 model files: the same problems as in ``.keras`` archives."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one HDF5 file."""
        found = 0
        with mapped(target.path) as view:
            end = min(len(view), H5_SCAN_BYTES)
            pos, tried = 0, 0
            while pos < end:
                match = _JSON_START.search(view, pos, end)
                if match is None:
                    break
                tried += 1
                if tried > MAX_CANDIDATES:
                    yield self._limit(target, f"more than {MAX_CANDIDATES} JSON-like spans")
                    return
                decoded = _decode_at(view, match.start(), end)
                if decoded is None or not isinstance(decoded[0], dict) or not _KERAS_KEYS & decoded[0].keys():
                    pos = match.start() + 1
                    continue
                found += 1
                yield from self._config(target, view, match.start(), decoded[1], decoded[0])
                pos = decoded[1]
            if len(view) > H5_SCAN_BYTES and not found:
                yield self._limit(target, f"no model config in the first {H5_SCAN_BYTES} bytes")
        if not found and target.asset.format == "hdf5-keras":
            yield self._limit(target, "it is marked as a Keras model but no model config was found")

    def _config(self, target: FileTarget, view: Any, start: int, stop: int, value: Any) -> Iterator[Finding]:
        span = ByteRange(start=start, end=stop, description="Keras model config JSON")
        try:
            parsed = loads_strict(bytes(view[start:stop]), max_bytes=MAX_CONFIG_BYTES)
        except JsonProblemError as exc:
            yield finding(
                self.name,
                MALFORMED_CONFIG,
                target,
                f"{file_name(target)}: the model config at byte {start} is rejected by a strict parser: "
                f"{exc}.",
                (span,),
                location=Location(offset=start),
            )
            parsed = None
        if parsed is not None and parsed.duplicates:
            yield finding(
                self.name,
                MALFORMED_CONFIG,
                target,
                f"{file_name(target)}: the model config at byte {start} repeats keys in one object "
                f"({', '.join(short(k, 40) for k in parsed.duplicates[:5])}).",
                (span,),
                location=Location(offset=start),
            )
        for issue in analyse_config(parsed.value if parsed is not None else value):
            yield finding(
                self.name,
                issue.rule,
                target,
                f"{file_name(target)}: {issue.message}",
                (Observation(name=issue.path, actual=issue.actual), span),
                location=Location(offset=start),
                severity=issue.severity,
            )

    def _limit(self, target: FileTarget, what: str) -> Finding:
        return finding(self.name, CONFIG_LIMIT, target, f"{file_name(target)}: {what}; config not checked.")


class KerasScanner(FileDetector):
    """Scans Keras models (``.keras`` archives and legacy HDF5 files) without loading them.

    Emits GAR-KRS-001 for Lambda bytecode, 002 for modules outside Keras, 003 for Keras functions
    that are gadgets in a config, 004 for custom objects, 005 for layers that read external
    files, 101 for malformed or duplicated configs, 102 for path-like names, 201 for limits.
    """

    name: ClassVar[str] = "keras-model"
    summary: ClassVar[str] = (
        "Finds Lambda bytecode, module/function gadgets and file-reading layers in Keras model configs."
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES
    formats: ClassVar[frozenset[str]] = frozenset({"keras-v3", "hdf5-keras", "hdf5"})

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for one ``.keras`` archive or HDF5 file."""
        if target.asset.format == "keras-v3":
            yield from _ArchiveScan(self.name).scan(target)
        else:
            yield from _Hdf5Scan(self.name).scan(target)
