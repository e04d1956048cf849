"""Metadata text of one image, read from its headers without decoding its pixels.

Image metadata leaks personal data that the pixels do not show: GPS positions, the camera owner or
artist, serial numbers of bodies and lenses, and free-text comments. This module turns what an image
carries into ``(field, text)`` pairs that the personal-data recognizers can scan:

- EXIF (JPEG APP1, PNG ``eXIf``, WebP, TIFF tags): every text-valued tag of the main, Exif and GPS
  directories as ``exif:<TagName>`` / ``gps:<TagName>``; ``UserComment`` and the Windows ``XP*`` tags
  decoded; binary tags (``MakerNote``) left out. The GPS position is returned as numbers.
- PNG ``tEXt``, ``zTXt`` and ``iTXt`` chunks as ``png:<keyword>``, wherever they lie in the file
  (also after the image data, where Pillow would only look after decoding the pixels); compressed
  chunks are inflated to a bound.
- JPEG and GIF comments as ``jpeg:comment`` / ``gif:comment``; IPTC (``iptc:By-line``, ...).
- XMP packets (JPEG, PNG, WebP, TIFF, GIF) as ``xmp``: the attribute values and text of the packet.

Every value is cut at :data:`MAX_VALUE_CHARS` and an image's metadata at :data:`MAX_METADATA_CHARS`.
The PNG walker also reports a file that ends before its ``IEND`` chunk (truncated) or continues
after it (appended data).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

#: The longest metadata value kept, in characters; the rest is cut off with a problem.
MAX_VALUE_CHARS = 64 * 1024
#: The most metadata text kept per image, in characters.
MAX_METADATA_CHARS = 1024 * 1024
#: The largest PNG text or EXIF chunk read, in bytes (compressed or not).
MAX_CHUNK_BYTES = 4 * 1024 * 1024

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_USER_COMMENT = 0x9286
_XP_TAGS = frozenset({0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F})
_BINARY_TAGS = frozenset({0x927C, 0x8773, 0x02BC, 0x83BB, 0x8649, 0x9C40})  # maker note, ICC, XMP, IPTC...
_XMP_TAG = 0x02BC  # TIFF XMLPacket
_GPS_TEXT = frozenset({18, 27, 28})  # GPSMapDatum, GPSProcessingMethod, GPSAreaInformation
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_XMP_KEY = "XML:com.adobe.xmp"
_XMP_VALUE = re.compile(r"\s([\w:.-]+)=\"([^\"]*)\"|>([^<>]+)<")
_IPTC_NAMES = {
    5: "ObjectName",
    25: "Keywords",
    80: "By-line",
    85: "By-lineTitle",
    90: "City",
    92: "Sublocation",
    95: "Province-State",
    101: "Country",
    105: "Headline",
    110: "Credit",
    115: "Source",
    116: "CopyrightNotice",
    118: "Contact",
    120: "Caption-Abstract",
    122: "Writer-Editor",
}


@dataclass(slots=True)
class Metadata:
    """What the headers of one image hold, as it is collected."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    """``(field, text)`` in the order met; a field may repeat."""
    gps: tuple[float, float] | None = None
    """Latitude and longitude in decimal degrees, when the EXIF GPS directory holds a position."""
    problems: list[str] = field(default_factory=list)
    """What was wrong or cut off."""
    chars: int = 0
    """Characters kept so far."""

    def add(self, name: str, text: str) -> None:
        """Keep one value, within the bounds, after trimming NULs and blanks."""
        text = text.replace("\x00", " ").strip()
        if not text:
            return
        room = MAX_METADATA_CHARS - self.chars
        if room <= 0:
            if not any(p.startswith("metadata over") for p in self.problems):
                self.problems.append(f"metadata over {MAX_METADATA_CHARS:,} characters; the rest not read")
            return
        limit = min(MAX_VALUE_CHARS, room)
        if len(text) > limit:
            self.problems.append(f"{name}: {len(text):,} characters, cut to {limit:,}")
            text = text[:limit]
        self.fields.append((name, text))
        self.chars += len(text)


def _printable(raw: bytes) -> str | None:
    """Bytes as text when they look like text (ASCII or UTF-8, mostly printable), else ``None``."""
    raw = raw.rstrip(b"\x00")
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def _user_comment(raw: bytes) -> str | None:
    """EXIF ``UserComment``: an 8-byte character-code prefix, then the text."""
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        big = body[:2] == b"\xfe\xff" or (len(body) > 1 and body[0] == 0 and body[1] != 0)
        return body.decode("utf-16-be" if big else "utf-16-le", errors="replace").lstrip("\ufeff")
    if code.startswith((b"ASCII", b"JIS", b"\x00")):
        return _printable(body)
    return _printable(raw)


def _exif_value(tag: int, value: Any) -> str | None:
    """The text of one EXIF value, or ``None`` for numbers and binary blobs."""
    if tag in _XP_TAGS:
        raw = bytes(value) if isinstance(value, tuple | list | bytes) else b""
        return raw.decode("utf-16-le", errors="replace") if raw else None
    if tag in (_USER_COMMENT, 27, 28) and isinstance(value, bytes):  # 27, 28: the GPS text tags
        return _user_comment(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes) and tag not in _BINARY_TAGS:
        return _printable(value)
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    """Degrees, minutes, seconds (rationals) and a hemisphere as signed decimal degrees."""
    try:
        parts = [float(v) for v in value]
        if not parts or len(parts) > 3:
            return None
        degrees = float(sum(p / 60**i for i, p in enumerate(parts)))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(degrees) or degrees > 180:  # NaN from a zero denominator, or not an angle
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("latin-1")
    return -degrees if isinstance(ref, str) and ref.strip().upper() == negative else degrees


def add_exif(meta: Metadata, exif: Any) -> None:
    """Add the text tags of an EXIF directory (a Pillow ``Image.Exif``) and its GPS position."""
    from PIL.ExifTags import GPSTAGS, TAGS

    directories: list[tuple[str, dict[int, Any], dict[int, str]]] = [("exif", dict(exif.items()), TAGS)]
    gps: dict[int, Any] = {}
    for pointer, prefix, names in ((_EXIF_IFD, "exif", TAGS), (_GPS_IFD, "gps", GPSTAGS)):
        try:
            directory = exif.get_ifd(pointer)
        except (KeyError, ValueError, TypeError, struct.error, OSError) as exc:
            meta.problems.append(f"EXIF directory {pointer:#x} is corrupt: {exc}")
            continue
        directories.append((prefix, directory, names))
        if pointer == _GPS_IFD:
            gps = directory
    for prefix, tags, names in directories:
        for tag, value in tags.items():
            pointer = prefix == "exif" and tag in (_EXIF_IFD, _GPS_IFD)
            if pointer or (prefix == "gps" and tag not in _GPS_TEXT):
                continue  # pointers, and GPS numbers and references (the position is kept as numbers)
            if tag == _XMP_TAG and isinstance(value, bytes):
                add_xmp(meta, value)
                continue
            text = _exif_value(tag, value)
            if text is not None:
                meta.add(f"{prefix}:{names.get(tag, f'{tag:#06x}')}", text)
    if 2 in gps and 4 in gps:
        lat = _degrees(gps[2], gps.get(1), "S")
        lon = _degrees(gps[4], gps.get(3), "W")
        if lat is not None and lon is not None and abs(lat) <= 90:
            meta.gps = (lat, lon)
        else:
            meta.problems.append("EXIF GPS position does not parse as degrees")


def add_xmp(meta: Metadata, packet: bytes | str) -> None:
    """Add the attribute values and text of an XMP packet as one ``xmp`` field."""
    text = packet if isinstance(packet, str) else packet[:MAX_CHUNK_BYTES].decode("utf-8", "replace")
    values: list[str] = []
    for m in _XMP_VALUE.finditer(text):
        name, attr, node = m.group(1), m.group(2), m.group(3)
        if name is not None and (name.startswith("xmlns") or name in ("rdf:about", "x:xmptk")):
            continue
        value = (attr if name is not None else node or "").strip()
        if value:
            values.append(value)
    meta.add("xmp", "\n".join(values))


def add_iptc(meta: Metadata, image: Any) -> None:
    """Add IPTC text (by-line, caption, contact, ...) of a JPEG or TIFF, if any."""
    from PIL import IptcImagePlugin

    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except (OSError, ValueError, SyntaxError, struct.error, IndexError) as exc:
        meta.problems.append(f"IPTC block is corrupt: {exc}")
        return
    for (record, dataset), value in info.items():
        if record != 2 or dataset == 0:
            continue
        items = value if isinstance(value, list) else [value]
        name = _IPTC_NAMES.get(dataset, f"2:{dataset}")
        for item in items:
            text = _printable(item) if isinstance(item, bytes) else None
            if text is not None:
                meta.add(f"iptc:{name}", text)


def _inflate(data: bytes) -> bytes | None:
    """zlib data inflated to at most :data:`MAX_CHUNK_BYTES`; ``None`` when corrupt or larger."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_CHUNK_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else out


def _png_text(kind: bytes, data: bytes) -> tuple[str, str] | None:
    """``(keyword, text)`` of a ``tEXt``, ``zTXt`` or ``iTXt`` chunk; ``None`` when malformed."""
    keyword, sep, rest = data.partition(b"\x00")
    if not sep:
        return None
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        body = _inflate(rest[1:])
        return None if body is None else (key, body.decode("latin-1"))
    if len(rest) < 2:
        return None
    compressed = rest[0] == 1
    _, _, rest = rest[2:].partition(b"\x00")  # language tag
    _, _, body = rest.partition(b"\x00")  # translated keyword
    if compressed:
        inflated = _inflate(body)
        if inflated is None:
            return None
        body = inflated
    return key, body.decode("utf-8", errors="replace")


def _png_chunks(handle: IO[bytes], size: int) -> Iterator[tuple[int, bytes, int]]:
    """``(offset, type, length)`` of each chunk header; the handle is left at the chunk's data."""
    pos = 8
    while pos + 8 <= size:
        handle.seek(pos)
        header = handle.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        yield pos, kind, length
        pos += 12 + length


def add_png(meta: Metadata, handle: IO[bytes], size: int) -> bytes | None:
    """Add every PNG text chunk; return the ``eXIf`` chunk's bytes, if any.

    Walks chunk headers only, seeking over the image data, so the cost is one read per chunk.
    """
    exif: bytes | None = None
    end = None
    for pos, kind, length in _png_chunks(handle, size):
        name = kind.decode("latin-1")
        if pos + 12 + length > size:
            meta.problems.append(
                f"truncated: the {name!r} chunk at byte {pos:,} needs {length:,} bytes, "
                f"the file ends {size - pos - 8:,} bytes in"
            )
            return exif
        if kind == b"IEND":
            end = pos + 12
            break
        if kind not in (*_PNG_TEXT, b"eXIf"):
            continue
        if length > MAX_CHUNK_BYTES:
            meta.problems.append(f"{name} chunk at byte {pos:,} of {length:,} bytes is too large; not read")
            continue
        data = handle.read(length)
        if kind == b"eXIf":
            exif = data
            continue
        text = _png_text(kind, data)
        if text is None:
            meta.problems.append(f"{name} chunk at byte {pos:,} is malformed")
        elif text[0] == _XMP_KEY:
            add_xmp(meta, text[1])
        else:
            meta.add(f"png:{text[0]}", text[1])
    if end is None:
        meta.problems.append("truncated: the file ends before the IEND chunk")
    elif end < size:
        meta.problems.append(f"{size - end:,} bytes after the IEND chunk (data appended to the image)")
    return exif


def check_ending(fmt: str, handle: IO[bytes], size: int, head: bytes) -> str | None:
    """Whether a JPEG, GIF, BMP or WebP file ends where its own structure says; a problem or ``None``.

    Reads at most the last 64 KiB. A file cut short is *truncated*; bytes after the end-of-image
    marker are *appended data*, a common way to hide a second file inside an image.
    """
    if fmt == "jpeg":
        tail_size = min(size, 64 * 1024)
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        if tail.endswith(b"\xff\xd9"):
            return None
        eoi = tail.rfind(b"\xff\xd9")
        if eoi < 0:
            return "truncated: no end-of-image marker (FF D9) at the end of the file"
        return f"{tail_size - eoi - 2:,} bytes after the end-of-image marker (data appended to the image)"
    if fmt == "gif":
        handle.seek(size - 1)
        return None if handle.read(1) == b";" else "truncated: no GIF trailer (3B) at the end of the file"
    if fmt in ("bmp", "webp") and len(head) >= 8:
        declared = (
            int.from_bytes(head[2:6], "little") if fmt == "bmp" else struct.unpack("<I", head[4:8])[0] + 8
        )
        if fmt == "webp":
            declared += declared % 2  # RIFF pads odd-sized chunks
        if declared and size < declared:
            return f"truncated: the header declares {declared:,} bytes, the file has {size:,}"
    return None


def check_tiff_strips(tags: Any, size: int) -> str | None:
    """A problem when a TIFF's strips or tiles point past the end of the file (truncated)."""
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if not offsets or not counts:
            continue
        try:
            end = max(int(o) + int(c) for o, c in zip(offsets, counts, strict=False))
        except (TypeError, ValueError):
            return "TIFF strip table is malformed"
        if end > size:
            return f"truncated: image data runs to byte {end:,}, the file has {size:,}"
    return None


__all__ = [
    "MAX_CHUNK_BYTES",
    "MAX_METADATA_CHARS",
    "MAX_VALUE_CHARS",
    "Metadata",
    "add_exif",
    "add_iptc",
    "add_png",
    "add_xmp",
    "check_ending",
    "check_tiff_strips",
]
