"""Image files and image folders as datasets: one record per image, streamed, pixels left alone.

An image folder is a directory of image files, optionally in class subfolders as torchvision's
``ImageFolder`` lays them out (``root/<label>/*.png``; the label is the first folder under the root).
Images are recognised by their content — PNG, JPEG, GIF, BMP, WebP and TIFF magic numbers — never by
their extension; a file named like an image that is not one is reported, not read.

:func:`iter_image_records` yields one :class:`ImageRecord` at a time: the path, label, format,
width, height, mode and bands, and the metadata text (EXIF, PNG text chunks, JPEG and GIF comments,
IPTC, XMP, see :mod:`garrison.data.readers_images_meta`) with the EXIF GPS position. Only headers are
read (Pillow's ``Image.open`` is lazy) unless ``decode=True``; an image declaring more than
``max_pixels`` pixels is a decompression bomb and is never decoded. A truncated, corrupt or disguised
file becomes a record with a ``problem`` or an ``error``, and the walk goes on.

:func:`iter_image_batches` turns the records into :class:`~garrison.data.readers_common.Batch` rows
(one row per image, one column per metadata field) for the personal-data scan;
:func:`~garrison.data.readers_images_array.load_image_array` decodes a folder into one ``numpy``
array for the poisoning and backdoor analyses. Memory holds one image at a time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InputError, MissingExtraError, ResourceLimitError, UsageError
from garrison.data.readers_common import Batch, ReadProblem
from garrison.data.readers_images_meta import (
    Metadata,
    add_exif,
    add_iptc,
    add_png,
    add_xmp,
    check_ending,
    check_tiff_strips,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "IdentifyingField",
    "ImageRecord",
    "identifying_fields",
    "is_image_folder",
    "iter_image_batches",
    "iter_image_records",
    "pillow",
    "pillow_available",
    "read_image",
    "sniff_image",
]

#: Pixels (width × height) above which an image is treated as a decompression bomb and not decoded.
#: Pillow's own warning threshold: a 24-bit image this size decodes to about 256 MiB.
DEFAULT_MAX_PIXELS = 89_478_485
#: Names that promise an image; such a file whose content is not an image is reported.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff"}
)
_HEAD = 32
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_MAX_DEPTH = 8
_OWNER_FIELDS = frozenset(
    {"exif:Artist", "exif:CameraOwnerName", "exif:XPAuthor", "png:Author", "iptc:By-line", "iptc:Contact"}
)
_SERIAL_FIELDS = frozenset(
    {"exif:BodySerialNumber", "exif:CameraSerialNumber", "exif:LensSerialNumber", "exif:ImageUniqueID"}
)


def sniff_image(head: bytes) -> str | None:
    """The image format of a file from its first bytes: ``png``, ``jpeg``, ``gif``, ``bmp``,
    ``webp`` or ``tiff``; ``None`` when it is none of them."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageRecord:
    """One image of a folder (or one image file): what its headers say, and what went wrong."""

    path: Path
    """The file."""
    name: str
    """Its path under the folder, with ``/`` separators (the file name for a single file)."""
    label: str | None
    """The class: the first folder under the root; ``None`` for an image in the root itself."""
    format: str | None
    """``png``, ``jpeg``, ``gif``, ``bmp``, ``webp`` or ``tiff``; ``None`` when not an image."""
    width: int | None = None
    """Width in pixels, from the header."""
    height: int | None = None
    """Height in pixels, from the header."""
    mode: str | None = None
    """Pillow's pixel mode (``RGB``, ``L``, ``RGBA``, ``P``, ``I;16``, ...)."""
    channels: int | None = None
    """Bands per pixel (3 for ``RGB``, 1 for ``L`` and ``P``)."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Metadata text as ``(field, text)``: ``exif:Artist``, ``gps:GPSAreaInformation``,
    ``png:Comment``, ``jpeg:comment``, ``iptc:By-line``, ``xmp``, ...; a field may repeat."""
    gps: tuple[float, float] | None = None
    """Latitude and longitude in decimal degrees from the EXIF GPS directory, when present."""
    problems: tuple[str, ...] = ()
    """What is wrong but did not stop the reading: truncation, appended data, corrupt EXIF."""
    error: str | None = None
    """Why the image could not be read at all (not an image, unreadable, a bomb); ``None`` if read."""
    too_large: bool = False
    """The error is that the image declares more pixels than the limit (a decompression bomb)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifyingField:
    """Metadata that identifies a person or their device whatever its text: a position, an owner, a serial."""

    kind: str
    """``location``, ``owner`` or ``device-serial``."""
    field: str
    """Where it is: ``exif:GPSInfo``, ``exif:Artist``, ``exif:BodySerialNumber``, ..."""
    masked: str
    """The value with most of it hidden: degrees only for a position, initials for a name,
    the last two characters of a serial."""


@functools.cache
def pillow_available() -> bool:
    """Whether Pillow is installed (the ``data`` extra), without importing it."""
    return importlib.util.find_spec("PIL") is not None


def pillow() -> Any:
    """Pillow's ``Image`` module, or :class:`MissingExtraError` with the install hint."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("reading images", extra="data", module="Pillow") from None
    return Image


def _mask_text(text: str, keep_last: int) -> str:
    """Star every letter and digit but initials (``keep_last`` 0) or the last ``keep_last`` ones."""
    if keep_last == 0:
        return "".join(
            "*" if ch.isalnum() and i and text[i - 1].isalnum() else ch for i, ch in enumerate(text)
        )
    alnum = [i for i, ch in enumerate(text) if ch.isalnum()]
    hidden = set(alnum[:-keep_last])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def identifying_fields(record: ImageRecord) -> tuple[IdentifyingField, ...]:
    """The GPS position, owner and device serial numbers of an image, masked for evidence."""
    found: list[IdentifyingField] = []
    if record.gps is not None:
        lat, lon = record.gps
        found.append(
            IdentifyingField(kind="location", field="exif:GPSInfo", masked=f"{int(lat)}.*°, {int(lon)}.*°")
        )
    seen: set[str] = set()
    for name, text in record.metadata:
        if name in seen:
            continue
        if name in _OWNER_FIELDS:
            found.append(IdentifyingField(kind="owner", field=name, masked=_mask_text(text[:80], 0)))
        elif name in _SERIAL_FIELDS:
            found.append(IdentifyingField(kind="device-serial", field=name, masked=_mask_text(text[:80], 2)))
        else:
            continue
        seen.add(name)
    return tuple(found)


def _open_record(path: Path, name: str, label: str | None, fmt: str, **facts: Any) -> ImageRecord:
    return ImageRecord(path=path, name=name, label=label, format=fmt, **facts)


def read_image(
    path: Path,
    *,
    name: str | None = None,
    label: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    decode: bool = False,
) -> ImageRecord:
    """The record of one image file; never raises for what the file holds.

    Reads the header and metadata only; with ``decode`` the pixels are decoded too (within
    ``max_pixels``), which finds damage the headers cannot show. Raises only
    :class:`MissingExtraError` when Pillow is not installed.
    """
    image_module = pillow()
    name = name or path.name
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
            fmt = sniff_image(head)
            if fmt is None:
                return ImageRecord(
                    path=path,
                    name=name,
                    label=label,
                    format=None,
                    error=f"not an image (starts {head[:8]!r})",
                )
            size = os.fstat(handle.fileno()).st_size
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                record = _read_open(image_module, handle, path, name, label, fmt, size, max_pixels, decode)
    except OSError as exc:
        return ImageRecord(
            path=path, name=name, label=label, format=None, error=f"cannot be read: {exc.strerror or exc}"
        )
    notes = tuple(
        str(w.message) for w in caught if not issubclass(w.category, image_module.DecompressionBombWarning)
    )
    if notes:
        record = ImageRecord(**{**_fields(record), "problems": (*record.problems, *notes)})
    return record


def _fields(record: ImageRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in ImageRecord.__slots__}


def _read_open(
    image_module: Any,
    handle: Any,
    path: Path,
    name: str,
    label: str | None,
    fmt: str,
    size: int,
    max_pixels: int,
    decode: bool,
) -> ImageRecord:
    """Open with Pillow and gather the facts; bad content becomes ``error`` or ``problems``."""
    handle.seek(0)
    try:
        image = image_module.open(handle)
    except image_module.DecompressionBombError as exc:
        return _open_record(path, name, label, fmt, error=f"decompression bomb: {exc}", too_large=True)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        # Pillow raises all of these for headers it cannot parse
        return _open_record(path, name, label, fmt, error=f"{fmt} header does not parse: {exc}")
    with image:
        width, height = image.size
        facts: dict[str, Any] = {
            "width": width,
            "height": height,
            "mode": image.mode,
            "channels": len(image.getbands()),
        }
        if width * height > max_pixels:
            return _open_record(
                path,
                name,
                label,
                fmt,
                **facts,
                error=f"declares {width:,}×{height:,} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,} (a decompression bomb?); not decoded",
                too_large=True,
            )
        meta = _metadata(image, handle, fmt, size)
        if decode:
            try:
                image.load()
            except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
                meta.problems.append(f"pixels do not decode: {exc}")
    return _open_record(
        path,
        name,
        label,
        fmt,
        **facts,
        metadata=tuple(meta.fields),
        gps=meta.gps,
        problems=tuple(meta.problems),
    )


def _metadata(image: Any, handle: Any, fmt: str, size: int) -> Metadata:
    """Every metadata text of an open image, from its headers."""
    meta = Metadata()
    exif_bytes: bytes | None = None
    if fmt == "png":
        exif_bytes = add_png(meta, handle, size)
    else:
        try:
            add_exif(meta, image.getexif())
        except (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError) as exc:
            meta.problems.append(f"EXIF does not parse: {exc}")
    if exif_bytes is not None:
        from PIL.Image import Exif  # not image.getexif(): on a PNG it decodes the pixels to look for one

        exif = Exif()
        try:
            exif.load(exif_bytes)
            add_exif(meta, exif)
        except (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError) as exc:
            meta.problems.append(f"EXIF does not parse: {exc}")
    if fmt == "jpeg":
        for marker, data in getattr(image, "applist", ()):
            if marker == "COM":
                text = data.decode("utf-8", errors="replace")
                meta.add("jpeg:comment", text)
    elif fmt == "gif" and isinstance(image.info.get("comment"), bytes):
        meta.add("gif:comment", image.info["comment"].decode("utf-8", errors="replace"))
    if fmt in ("jpeg", "tiff"):
        add_iptc(meta, image)
    xmp = image.info.get("xmp")
    if fmt != "png" and isinstance(xmp, bytes | str):
        add_xmp(meta, xmp)
    problem = check_tiff_strips(image.tag_v2, size) if fmt == "tiff" else None
    if fmt != "tiff":
        handle.seek(0)
        head = handle.read(_HEAD)
        problem = check_ending(fmt, handle, size, head)
    if problem:
        meta.problems.append(problem)
    return meta


def _walk(root: Path, depth: int = 0) -> Iterator[Path]:
    """Regular files under ``root``, sorted, depth first; links and hidden entries left out."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            if depth < _MAX_DEPTH:
                yield from _walk(Path(entry.path), depth + 1)
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_HEAD)
    except OSError:
        return b""


def is_image_folder(path: Path, *, sample: int = 64) -> bool:
    """Whether ``path`` is a directory whose files are images (judged on the first ``sample``).

    At least one file must be an image by content, and images must be at least half of the files
    looked at; other files (a README, a labels CSV) may sit beside them.
    """
    if not path.is_dir():
        return False
    images = others = 0
    for file in _walk(path):
        if sniff_image(_head(file)) is not None:
            images += 1
        else:
            others += 1
        if images + others >= sample:
            break
    return images > 0 and images >= others


def iter_image_records(
    root: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_files: int = 1_000_000,
    decode: bool = False,
) -> Iterator[ImageRecord]:
    """A record for every image under ``root``, and for every file named like an image that is not one.

    Files sorted by path; at most ``max_files`` are looked at (then :class:`ResourceLimitError`).
    Other files (not images, not named like images) are left out: they belong to the other readers;
    so are hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``), symbolic links (never
    followed) and anything deeper than eight folders.
    A single image file as ``root`` yields its one record.
    """
    if max_pixels < 1 or max_files < 1:
        raise UsageError("max_pixels and max_files must be positive")
    if root.is_file():
        yield read_image(root, max_pixels=max_pixels, decode=decode)
        return
    if not root.is_dir():
        raise InputError(f"{root}: not a file or directory")
    for looked, path in enumerate(_walk(root), start=1):
        if looked > max_files:
            raise ResourceLimitError(
                f"{root}: more than {max_files:,} files; the rest were not read",
                limit="max-files",
                value=max_files,
            )
        parts = path.relative_to(root).parts
        name = "/".join(parts)
        label = parts[0] if len(parts) > 1 else None
        fmt = sniff_image(_head(path))
        if fmt is None:
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                yield ImageRecord(
                    path=path,
                    name=name,
                    label=label,
                    format=None,
                    error=f"named like an image ({path.suffix}) but its content is not an image; not read",
                )
            continue
        yield read_image(path, name=name, label=label, max_pixels=max_pixels, decode=decode)


def _problem(row: int | None, message: str) -> ReadProblem:
    return ReadProblem(row=row, byte_offset=None, column=None, message=message)


def _batch(records: list[ImageRecord], first_row: int, with_label: bool, bytes_read: int) -> Batch:
    """One batch: a row per readable image, a column per metadata field (the union of the batch)."""
    names: dict[str, None] = {"label": None} if with_label else {}
    for record in records:
        for key, _ in record.metadata:
            names.setdefault(key, None)
    columns = tuple(names)
    index = {name: i for i, name in enumerate(columns)}
    rows: list[tuple[int, tuple[str | None, ...]]] = []
    problems: list[ReadProblem] = []
    for number, record in enumerate(records, start=first_row):
        for problem in record.problems:
            problems.append(_problem(number, f"{record.name}: {problem}"))
        if record.error is not None:
            problems.append(_problem(number, f"{record.name}: {record.error}"))
            continue
        values: list[str | None] = [None] * len(columns)
        if with_label:
            values[0] = record.label
        for key, text in record.metadata:
            at = index[key]
            values[at] = text if values[at] is None else f"{values[at]}\n{text}"
        rows.append((number, tuple(values)))
    return Batch(columns=columns, rows=tuple(rows), problems=tuple(problems), bytes_read=bytes_read)


def iter_image_batches(
    path: Path, *, batch_rows: int = 5_000, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[Batch]:
    """Batches of image metadata rows: one row per image, one column per metadata field.

    For one image file: a single batch of one row (no ``label`` column). An image that cannot be
    read raises :class:`InputError`, a decompression bomb :class:`ResourceLimitError`; truncation
    and other damage are problems of the batch. For a folder: rows numbered from 1 in path order,
    with a ``label`` column; unreadable images, bombs and disguised files are problems naming the
    file, and reading goes on. Memory is bounded by ``batch_rows`` records.
    """
    if path.is_file():
        record = read_image(path, max_pixels=max_pixels)
        if record.too_large:
            raise ResourceLimitError(f"{path}: {record.error}", limit="max-pixels", value=max_pixels)
        if record.error is not None:
            raise InputError(f"{path}: {record.error}")
        yield _batch([record], 1, False, path.stat().st_size)
        return
    pending: list[ImageRecord] = []
    row = 1
    consumed = 0
    for record in iter_image_records(path, max_pixels=max_pixels):
        pending.append(record)
        with contextlib.suppress(OSError):
            consumed += record.path.stat().st_size
        if len(pending) >= batch_rows:
            yield _batch(pending, row, True, consumed)
            row += len(pending)
            pending = []
    if pending:
        yield _batch(pending, row, True, consumed)
