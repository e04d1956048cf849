"""Image files and folders as datasets: identification by content, metadata text, damage, bombs."""

from __future__ import annotations

import io
import json
import random
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.config import Settings
from garrison.core.errors import InputError, ResourceLimitError, UnsupportedFormatError
from garrison.data.profile import profile_dataset
from garrison.data.readers import detect_kind, iter_batches
from garrison.data.readers_images import (
    identifying_fields,
    is_image_folder,
    iter_image_records,
    read_image,
    sniff_image,
)
from garrison.data.readers_images_array import load_image_array
from garrison.detectors import default_registry
from garrison.engine import scan_path
from garrison.recognizers.pii_types import Entity

Image = pytest.importorskip("PIL.Image")
PngImagePlugin = pytest.importorskip("PIL.PngImagePlugin")
TiffImagePlugin = pytest.importorskip("PIL.TiffImagePlugin")
np = pytest.importorskip("numpy")

# The Eiffel Tower: 48° 51' 29.6" N, 2° 17' 40.2" E.
LAT, LON = 48.858222, 2.294500


# ---------------------------------------------------------------- fixtures made here, with Pillow


def _picture(size: tuple[int, int] = (16, 12), color: tuple[int, int, int] = (200, 30, 30)) -> object:
    return Image.new("RGB", size, color)


def _noise(size: tuple[int, int]) -> object:
    rng = random.Random(7)
    return Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))


def _gps_exif() -> object:
    rational = TiffImagePlugin.IFDRational
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"  # Artist
    exif[0x010F] = "Canon"  # Make
    sub = exif.get_ifd(0x8769)
    sub[0xA431] = "SN12345678"  # BodySerialNumber
    sub[0x9286] = b"ASCII\x00\x00\x00write to jane.doe@example.com"  # UserComment
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3] = "N", "E"
    gps[2] = (rational(48), rational(51), rational(296, 10))
    gps[4] = (rational(2), rational(17), rational(402, 10))
    return exif


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_chunk_before_iend(png: bytes, chunk: bytes) -> bytes:
    """A PNG with ``chunk`` after the image data, where Pillow looks only after decoding the pixels."""
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]


def _png_bytes(image: object, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **kwargs)  # type: ignore[attr-defined]
    return out.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header claims ``width`` × ``height`` pixels."""
    png = bytearray(_png_bytes(Image.new("L", (1, 1))))
    ihdr = bytes(png[12:29])  # type + data
    data = struct.pack(">II", width, height) + ihdr[12:]
    png[16:29] = data
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + data))
    return bytes(png)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An ImageFolder layout: root/<label>/*, with metadata, damage and a disguised text file."""
    root = tmp_path / "faces"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    _picture().save(root / "cats" / "a.jpg", exif=_gps_exif(), comment=b"shot by bob@example.org")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "mail me: alice@example.com")
    info.add_itxt("Author", "Zoë Smith", zip=True)
    _picture(color=(10, 200, 10)).save(root / "cats" / "b.png", pnginfo=info)
    noisy = _png_bytes(_noise((64, 64)), pnginfo=info)
    (root / "dogs" / "cut.png").write_bytes(noisy[:-3000])  # cut inside the image data
    (root / "dogs" / "notes.png").write_text("call carol@example.net about the shoot\n")
    _picture(color=(10, 10, 200)).save(root / "dogs" / "c.gif")
    (root / "labels.csv").write_text("file,label\na.jpg,cats\n")  # not an image, not named like one
    return root


# ---------------------------------------------------------------- identification


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tiff")],
)
def test_images_are_identified_by_their_bytes(fmt: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "no-extension"
    _picture().save(path, fmt)
    assert sniff_image(path.read_bytes()[:32]) == expected
    assert detect_kind(path) == "image"
    record = read_image(path)
    assert (record.format, record.width, record.height, record.error) == (expected, 16, 12, None)
    assert record.channels == (1 if fmt == "GIF" else 3)


@pytest.mark.parametrize(
    "head",
    [b"", b"hello world", b"BM is a text file that starts like a bitmap", b"RIFF\x00\x00\x00\x00WAVEfmt "],
)
def test_other_bytes_are_not_images(head: bytes) -> None:
    assert sniff_image(head) is None


def test_a_text_file_named_like_an_image_is_text(folder: Path) -> None:
    fake = folder / "dogs" / "notes.png"
    assert detect_kind(fake) == "text"
    record = read_image(fake)
    assert record.format is None
    assert record.error is not None
    assert "not an image" in record.error


def test_image_folder_is_recognised(folder: Path, tmp_path: Path) -> None:
    assert detect_kind(folder) == "image-folder"
    assert is_image_folder(folder)
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "a.csv").write_text("x\n1\n")
    assert not is_image_folder(tables)
    with pytest.raises(UnsupportedFormatError, match="not an image folder"):
        detect_kind(tables)


# ---------------------------------------------------------------- records


def test_records_stream_the_folder_with_labels_and_problems(folder: Path) -> None:
    records = {r.name: r for r in iter_image_records(folder)}
    assert list(records) == ["cats/a.jpg", "cats/b.png", "dogs/c.gif", "dogs/cut.png", "dogs/notes.png"]
    assert {r.label for r in records.values()} == {"cats", "dogs"}
    a = records["cats/a.jpg"]
    assert (a.format, a.width, a.height, a.mode) == ("jpeg", 16, 12, "RGB")
    assert a.gps == pytest.approx((LAT, LON), abs=1e-5)
    meta = dict(a.metadata)
    assert meta["exif:Artist"] == "Jane Doe"
    assert meta["exif:BodySerialNumber"] == "SN12345678"
    assert meta["exif:UserComment"] == "write to jane.doe@example.com"
    assert meta["jpeg:comment"] == "shot by bob@example.org"
    b = dict(records["cats/b.png"].metadata)
    assert b == {"png:Comment": "mail me: alice@example.com", "png:Author": "Zoë Smith"}
    cut = records["dogs/cut.png"]
    assert cut.error is None  # the header and the text before the cut are still read
    assert dict(cut.metadata)["png:Comment"] == "mail me: alice@example.com"
    assert any(p.startswith("truncated") for p in cut.problems)
    decoded = {r.name: r for r in iter_image_records(folder, decode=True)}
    assert [decoded[n].problems for n in ("cats/a.jpg", "cats/b.png", "dogs/c.gif")] == [(), (), ()]
    assert "pixels do not decode: image file is truncated" in decoded["dogs/cut.png"].problems
    notes = records["dogs/notes.png"]
    assert notes.error is not None
    assert "named like an image (.png)" in notes.error


def test_identifying_metadata_is_masked(folder: Path) -> None:
    found = {f.kind: f for f in identifying_fields(read_image(folder / "cats" / "a.jpg"))}
    assert set(found) == {"location", "owner", "device-serial"}
    assert found["location"].masked == "48.*°, 2.*°"
    assert found["owner"].masked == "J*** D**"
    assert found["device-serial"].masked.endswith("78")
    assert "1234" not in found["device-serial"].masked


def test_png_text_after_the_image_data_is_read(tmp_path: Path) -> None:
    png = _png_bytes(_picture())
    late = _png_chunk(b"tEXt", b"Comment\x00reach dave@example.com")
    squeezed = _png_chunk(b"zTXt", b"Description\x00\x00" + zlib.compress(b"by eve@example.com"))
    path = tmp_path / "late.png"
    path.write_bytes(_with_chunk_before_iend(png, late + squeezed))
    record = read_image(path)
    assert dict(record.metadata) == {
        "png:Comment": "reach dave@example.com",
        "png:Description": "by eve@example.com",
    }
    assert record.problems == ()


def test_png_exif_and_xmp(tmp_path: Path) -> None:
    path = tmp_path / "exif.png"
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:rights="(c) frank@example.com">'
        b"<dc:creator>Frank Roe</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    _picture().save(path, exif=_gps_exif(), pnginfo=info)
    record = read_image(path)
    assert record.gps == pytest.approx((LAT, LON), abs=1e-5)
    meta = dict(record.metadata)
    assert meta["xmp"] == "(c) frank@example.com\nFrank Roe"
    assert meta["exif:Artist"] == "Jane Doe"


def test_corrupt_exif_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bad-exif.png"
    chunk = _png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(range(40)))
    path.write_bytes(_with_chunk_before_iend(_png_bytes(_picture()), chunk))
    record = read_image(path)
    assert record.error is None
    assert record.width == 16


def test_jpeg_damage_and_appended_data(tmp_path: Path) -> None:
    out = io.BytesIO()
    _noise((64, 64)).save(out, "JPEG", comment=b"kept")
    data = out.getvalue()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    record = read_image(cut)
    assert record.error is None
    assert any("no end-of-image marker" in p for p in record.problems)
    assert dict(record.metadata) == {"jpeg:comment": "kept"}
    assert any("do not decode" in p for p in read_image(cut, decode=True).problems)
    polyglot = tmp_path / "polyglot.jpg"
    polyglot.write_bytes(data + b"PK\x03\x04 a zip hides here")
    assert any("appended" in p for p in read_image(polyglot).problems)


def test_a_broken_header_is_an_error_record(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 3)
    record = read_image(path)
    assert record.format == "png"
    assert record.error is not None
    with pytest.raises(InputError, match=r"broken\.png"):
        list(iter_batches(path))


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_after_a_magic_number_never_raise(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    magic = rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00", b"MM\x00*"])
    path = tmp_path / "noise.img"
    path.write_bytes(magic + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 400))))
    record = read_image(path)
    assert record.error is not None or record.width is not None


# ---------------------------------------------------------------- bounds


def test_a_decompression_bomb_is_never_decoded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(100_000, 100_000))
    record = read_image(bomb)
    assert record.too_large
    assert record.error is not None
    assert "bomb" in record.error
    small = tmp_path / "small.png"
    _picture((100, 100)).save(small)
    capped = read_image(small, max_pixels=1_000)
    assert capped.too_large
    assert (capped.width, capped.height) == (100, 100)
    assert "10,000 pixels, over the limit of 1,000" in (capped.error or "")
    with pytest.raises(ResourceLimitError):
        list(iter_batches(bomb))


def test_records_read_headers_only(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    _noise((1500, 1500)).save(path, compress_level=1, exif=_gps_exif())  # 6.75 MB of pixels decoded
    tracemalloc.start()
    try:
        record = read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (record.width, record.height) == (1500, 1500)
    assert record.gps is not None
    assert peak < 1_000_000


# ---------------------------------------------------------------- batches and the personal-data scan


def test_batches_hold_one_row_per_image_and_problems_by_file(folder: Path) -> None:
    batches = list(iter_batches(folder, batch_rows=2))
    assert len(batches) == 3
    rows = [row for b in batches for row in b.rows]
    assert [number for number, _ in rows] == [1, 2, 3, 4]
    first = batches[0]
    assert first.columns is not None
    assert first.columns[0] == "label"
    values = dict(zip(first.columns, first.rows[0][1], strict=True))
    assert values["label"] == "cats"
    assert values["exif:UserComment"] == "write to jane.doe@example.com"
    problems = [p for b in batches for p in b.problems]
    assert [p.row for p in problems] == [4, 5]
    assert problems[0].message.startswith("dogs/cut.png: truncated")
    assert problems[1].message.startswith("dogs/notes.png: named like an image")


def test_profile_of_an_image_folder_finds_e_mail_in_metadata(folder: Path) -> None:
    profile = profile_dataset(folder)
    assert profile.kind == "image-folder"
    assert profile.rows == 4
    emails = {column for column, entity in profile.findings if entity is Entity.EMAIL}
    assert emails == {"exif:UserComment", "jpeg:comment", "png:Comment"}
    assert profile.findings[("png:Comment", Entity.EMAIL)].rows == 2  # b.png and cut.png
    assert profile.problem_count == 2


def test_scan_data_reports_metadata_pii_gps_and_damage(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", "data", str(folder), "--no-store", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    found = {
        (f["asset"]["locator"].rsplit("/", 2)[-2:][-1], f["rule"]["id"], f["location"].get("column"))
        for f in report["findings"]
    }
    assert ("a.jpg", "GAR-PII-001", "exif:GPSInfo") in found  # the location, with no text PII in it
    assert ("a.jpg", "GAR-PII-001", "exif:UserComment") in found
    assert ("a.jpg", "GAR-PII-001", "jpeg:comment") in found
    assert ("a.jpg", "GAR-PII-001", "exif:Artist") in found
    assert ("a.jpg", "GAR-PII-001", "exif:BodySerialNumber") in found
    assert ("b.png", "GAR-PII-001", "png:Comment") in found
    assert ("cut.png", "GAR-DATA-101", None) in found
    assert ("notes.png", "GAR-PII-001", None) in found  # a text file, scanned as text
    gps = next(f for f in report["findings"] if f["location"].get("column") == "exif:GPSInfo")
    assert "48.*°, 2.*°" in gps["message"]
    assert "48.858" not in json.dumps(report)
    assert "jane.doe@example.com" not in json.dumps(report)
    assert report["errors"] == []
    assert code == 0  # medium findings, below the default --fail-on high


def test_a_bomb_in_a_folder_is_a_limit_finding_and_the_rest_is_scanned(folder: Path) -> None:
    (folder / "dogs" / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    report = scan_path(folder, settings=Settings(store=False), registry=default_registry(plugins=False))
    limits = [f for f in report.findings if f.rule.id == "GAR-SCAN-201"]
    assert len(limits) == 1
    assert limits[0].asset.locator.endswith("bomb.png")
    assert any(e.locator.endswith("bomb.png") for e in report.errors)
    assert any(f.location.column == "exif:GPSInfo" for f in report.findings)


# ---------------------------------------------------------------- arrays for the poisoning analyses


def test_load_image_array(folder: Path) -> None:
    loaded = load_image_array(folder)
    assert loaded.images.shape == (3, 12, 16, 3)  # a.jpg, b.png, c.gif; the cut PNG is 64×64
    assert loaded.images.dtype == np.uint8
    assert loaded.classes == ("cats", "dogs")
    assert loaded.labels.tolist() == [0, 0, 1]
    assert [p.name for p in loaded.paths] == ["a.jpg", "b.png", "c.gif"]
    assert loaded.images[1, 0, 0].tolist() == [10, 200, 10]
    messages = [p.message for p in loaded.problems]
    assert any(m.startswith("dogs/cut.png: 64×64, not the first image's 16×12") for m in messages)
    assert any(m.startswith("dogs/notes.png") for m in messages)


def test_load_image_array_resizes_converts_and_caps(folder: Path) -> None:
    gray = load_image_array(folder, size=(8, 8), mode="L")
    assert gray.images.shape[1:] == (8, 8)
    assert "dogs/cut.png" not in {p.parent.name + "/" + p.name for p in gray.paths}  # fails to decode
    assert any("does not decode" in p.message for p in gray.problems)
    assert load_image_array(folder, size=(8, 8), max_images=2).images.shape == (2, 8, 8, 3)
    with pytest.raises(ResourceLimitError, match="over the limit"):
        load_image_array(folder, size=(512, 512), max_bytes=1_000_000)
