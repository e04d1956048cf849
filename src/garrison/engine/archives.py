"""Opening generic archives (zip, tar, gzip, bzip2, xz, LZ4, 7z) so their members get scanned.

Each member is copied, bounded, into a temporary file and handed back to the engine, which
identifies it by content and runs every detector on it, recursing into archives inside archives.
Model formats built on zip (PyTorch, TorchScript, npz, Keras) are not expanded: their own
scanners read them the way their loaders do. Names that would escape an extraction folder, links
that point out of it, unreadable members and every limit hit are reported.
"""

from __future__ import annotations

import hashlib
import importlib
import posixpath
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from garrison.core.errors import GarrisonError, ResourceLimitError
from garrison.core.rules import Rule
from garrison.engine.rules import (
    ARCHIVE_BOMB,
    ARCHIVE_LIMIT_REACHED,
    ARCHIVE_LINK_ESCAPES,
    ARCHIVE_MEMBER_UNREADABLE,
    ARCHIVE_PATH_TRAVERSAL,
)
from garrison.formats.streams import MAX_RATIO, RATIO_GRACE, decode_stream
from garrison.formats.zipreader import (
    FileSource,
    iter_member,
    read_directory,
    read_local_header,
)

EXPANDED_FORMATS = frozenset({"zip", "tar", "gzip", "bz2", "xz", "lz4", "7z"})
"""Formats the engine opens; model formats built on archives are left to their scanners."""

MAX_DEPTH = 4
"""Deepest nesting of archives opened."""
MAX_MEMBERS = 10_000
"""Most members opened from one file on disk, all nesting levels together."""
MAX_EXPANDED_BYTES = 4 * 2**30
"""Most bytes extracted from one file on disk, all nesting levels together."""

_CHUNK = 1 << 20
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(slots=True)
class Budget:
    """What one file on disk may still expand to; built per file from the archive settings."""

    members: int = MAX_MEMBERS
    """Members that may still be opened (counts down)."""
    expanded: int = MAX_EXPANDED_BYTES
    """Bytes that may still be extracted (counts down)."""
    max_depth: int = MAX_DEPTH
    """Deepest nesting opened."""
    max_ratio: int = MAX_RATIO
    """Highest decompressed/compressed ratio of one member before it is called a bomb."""
    limit_members: int = field(init=False)
    """The configured member limit, for messages."""
    limit_expanded: int = field(init=False)
    """The configured byte limit, for messages."""
    archive_output: int = field(init=False, default=0)
    """Bytes decompressed from the 7z archive being read (for its ratio)."""

    def __post_init__(self) -> None:
        self.limit_members = self.members
        self.limit_expanded = self.expanded


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """A member copied to a temporary file."""

    name: str
    path: Path
    size: int
    digest: str
    head: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Something wrong with the archive or a member; ``incomplete`` when content went unscanned."""

    rule: Rule | None
    message: str
    name: str | None = None
    incomplete: bool = False
    details: tuple[tuple[str, str], ...] = field(default=())


def escapes(name: str) -> bool:
    """Whether extracting ``name`` would write outside the extraction folder."""
    name = name.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return True
    return ".." in posixpath.normpath(name).split("/")


def _link_escapes(name: str, target: str) -> bool:
    target = target.replace("\\", "/")
    if target.startswith("/") or _DRIVE.match(target):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name.replace("\\", "/")), target))
    return joined == ".." or joined.startswith("../")


class _MemberFile:
    """One member being extracted to our own file: hashed, its head kept, counted against the budget."""

    def __init__(self, dest: Path, name: str, budget: Budget) -> None:
        self.dest, self.name, self.budget = dest, name, budget
        self.handle = dest.open("wb")
        self.hasher = hashlib.sha256()
        self.head = b""
        self.written = 0

    def write(self, data: bytes | bytearray) -> int:
        self.written += len(data)
        self.budget.expanded -= len(data)  # all members and nesting levels draw on one budget
        if self.budget.expanded < 0:
            raise ResourceLimitError(
                f"{self.name}: the archive expands past {self.budget.limit_expanded} bytes in total",
                limit="archive-expanded-bytes",
                value=self.budget.limit_expanded,
            )
        if len(self.head) < 65536:
            self.head += bytes(data[: 65536 - len(self.head)])
        self.hasher.update(data)
        self.handle.write(data)
        return len(data)

    def close(self) -> None:
        self.handle.close()

    def extracted(self) -> Extracted:
        """The finished member, for the engine to identify and scan."""
        return Extracted(
            name=self.name,
            path=self.dest,
            size=self.written,
            digest="sha256:" + self.hasher.hexdigest(),
            head=self.head,
        )


def _copy(chunks: Iterable[bytes], dest: Path, budget: Budget, name: str) -> Extracted:
    member = _MemberFile(dest, name, budget)
    try:
        for chunk in chunks:
            member.write(chunk)
    finally:
        member.close()
    return member.extracted()


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _take(budget: Budget, name: str) -> None:
    if budget.members <= 0:
        raise ResourceLimitError(
            f"{name}: more than {budget.limit_members} archive members",
            limit="archive-members",
            value=budget.limit_members,
        )
    budget.members -= 1


def _check_name(name: str) -> Problem | None:
    if escapes(name):
        return Problem(
            rule=ARCHIVE_PATH_TRAVERSAL,
            name=name,
            message=f"member {name!r} would be extracted outside the target folder",
        )
    return None


def _zip(path: Path, size: int, tmp: Path, budget: Budget) -> Iterator[Extracted | Problem]:
    with path.open("rb") as handle:
        src = FileSource(handle, size)
        directory = read_directory(src)
        for entry in directory.entries:
            name = entry.name
            if problem := _check_name(name):
                yield problem
            if name.endswith("/"):
                continue
            _take(budget, name)
            try:
                local = read_local_header(src, entry, base=directory.prefix)
                chunks = iter_member(
                    src, entry, local, max_bytes=budget.expanded, exact_size=False, max_ratio=budget.max_ratio
                )
                if (entry.external_attr >> 16) & _S_IFMT == _S_IFLNK:
                    target = b"".join(chunks)[:4096].decode("utf-8", "replace")
                    if _link_escapes(name, target):
                        yield Problem(
                            rule=ARCHIVE_LINK_ESCAPES,
                            name=name,
                            message=f"link {name!r} points to {target!r}",
                        )
                    continue
                yield _copy(chunks, tmp / f"m{budget.members}", budget, name)
            except ResourceLimitError:
                raise
            except GarrisonError as exc:
                yield Problem(rule=ARCHIVE_MEMBER_UNREADABLE, name=name, message=exc.message, incomplete=True)


def _tar(path: Path, tmp: Path, budget: Budget) -> Iterator[Extracted | Problem]:
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for info in iter(tar.next, None):
                name = info.name
                if problem := _check_name(name):
                    yield problem
                if info.issym() or info.islnk():
                    if _link_escapes(name, info.linkname) or (info.islnk() and escapes(info.linkname)):
                        kind = "symbolic link" if info.issym() else "hard link"
                        yield Problem(
                            rule=ARCHIVE_LINK_ESCAPES,
                            name=name,
                            message=f"{kind} {name!r} points to {info.linkname!r}",
                        )
                    continue
                if not info.isfile():
                    continue
                _take(budget, name)
                stream = tar.extractfile(info)
                if stream is None:
                    continue
                yield _copy(_chunks(stream), tmp / f"m{budget.members}", budget, name)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        yield Problem(rule=None, message=f"tar archive cannot be read ({str(exc)[:120]})", incomplete=True)


def _stream(path: Path, fmt: str, locator: str, tmp: Path, budget: Budget) -> Iterator[Extracted | Problem]:
    base = locator.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    name = stem if dot and ext.lower() in ("gz", "bz2", "xz", "lz4", "tgz") else base + ".decompressed"
    _take(budget, name)
    with path.open("rb") as handle:
        try:
            chunks = decode_stream(handle.read, fmt, max_bytes=budget.expanded, max_ratio=budget.max_ratio)
            yield _copy(chunks, tmp / f"m{budget.members}", budget, name)
        except ResourceLimitError:
            raise
        except GarrisonError as exc:
            yield Problem(rule=ARCHIVE_MEMBER_UNREADABLE, name=name, message=exc.message, incomplete=True)


class _SevenZipSink(_MemberFile):
    """Where py7zr writes one member (the file-like interface it asks for), with the archive's ratio."""

    def __init__(self, dest: Path, name: str, budget: Budget, limit: int) -> None:
        super().__init__(dest, name, budget)
        self.limit = limit

    def write(self, data: bytes | bytearray) -> int:
        self.budget.archive_output += len(data)
        if self.budget.archive_output > self.limit:
            raise ResourceLimitError(
                f"7z data expands more than {self.budget.max_ratio} times (a decompression bomb)",
                limit="expansion-ratio",
                value=self.budget.max_ratio,
            )
        return super().write(data)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.written

    def flush(self) -> None:
        self.handle.flush()

    def size(self) -> int:
        return self.written


def _seven_zip(path: Path, size: int, tmp: Path, budget: Budget) -> Iterator[Extracted | Problem]:
    """Members of a 7z archive, decompressed by py7zr into bounded sinks in one pass."""
    try:
        py7zr = importlib.import_module("py7zr")
        py7zr_io = importlib.import_module("py7zr.io")
    except ImportError:
        yield Problem(
            rule=None,
            message="7z archive not scanned: reading it needs the optional dependency 'py7zr' "
            "(pip install 'garrison[archives]')",
            incomplete=True,
        )
        return
    sinks: dict[str, _SevenZipSink] = {}
    links: set[str] = set()
    link_sinks: dict[str, _SevenZipSink] = {}
    limit = max(budget.max_ratio * max(size, 1), RATIO_GRACE)

    class Factory(py7zr_io.WriterFactory):  # type: ignore[misc,name-defined]
        def create(self, filename: str) -> _SevenZipSink:
            if filename in links:
                link_sinks[filename] = _SevenZipSink(tmp / f"l{len(link_sinks)}", filename, budget, limit)
                return link_sinks[filename]
            _take(budget, filename)
            sink = _SevenZipSink(tmp / f"m{budget.members}", filename, budget, limit)
            sinks[filename] = sink
            return sink

    budget.archive_output = 0
    try:
        with py7zr.SevenZipFile(path, mode="r") as archive:
            if archive.needs_password():
                yield Problem(rule=None, message="7z archive is encrypted: not scanned", incomplete=True)
                return
            infos = [info for info in archive.list() if not info.is_directory]
            for info in infos:
                if problem := _check_name(str(info.filename)):
                    yield problem
                if info.is_symlink:
                    links.add(str(info.filename))
            archive.extract(factory=Factory())
    except ResourceLimitError:
        raise
    except Exception as exc:  # noqa: BLE001 - py7zr raises many types on corrupt input
        yield Problem(rule=None, message=f"7z archive cannot be read ({str(exc)[:120]})", incomplete=True)
    finally:
        for sink in (*sinks.values(), *link_sinks.values()):
            sink.close()
    for name, sink in link_sinks.items():
        target = sink.head[:4096].decode("utf-8", "replace")
        if _link_escapes(name, target):
            yield Problem(rule=ARCHIVE_LINK_ESCAPES, name=name, message=f"link {name!r} points to {target!r}")
    for sink in sinks.values():
        yield sink.extracted()


def open_archive(
    path: Path, fmt: str, locator: str, size: int, tmp: Path, budget: Budget
) -> Iterator[Extracted | Problem]:
    """Members of the archive at ``path`` (format ``fmt``), extracted under ``tmp`` within ``budget``.

    Raises ``ResourceLimitError`` when a member count, byte or ratio limit is hit.
    """
    if fmt == "zip":
        return _zip(path, size, tmp, budget)
    if fmt == "tar":
        return _tar(path, tmp, budget)
    if fmt == "7z":
        return _seven_zip(path, size, tmp, budget)
    return _stream(path, fmt, locator, tmp, budget)


def limit_rule(limit: str) -> Rule:
    """The rule for a limit hit while expanding: a bomb for bytes and ratio, else too deep or too many."""
    bomb = limit in ("expansion-ratio", "archive-expanded-bytes", "expanded-bytes")
    return ARCHIVE_BOMB if bomb else ARCHIVE_LIMIT_REACHED
