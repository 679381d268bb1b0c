"""The bad-file corpus, generated here: what a receipt upload must refuse, and what it must clean."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image
from pypdf import PdfWriter

from portal import create_app
from portal.uploads import files as rf
from portal.uploads.files import FileProblem, clean_upload, sniff
from tests.fixtures import app_config
from tests.helpers import jpeg_with_gps, plain_pdf, raw_pdf


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A request context for the translated messages; these checks need no database."""
    app = create_app(app_config("sqlite:///:memory:", tmp_path_factory.mktemp("files"), 1025))
    with app.test_request_context():
        yield


# Generators -------------------------------------------------------------------------------------


def image_bytes(fmt: str, size=(40, 30), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "blue").save(out, fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG of 1-bit zeros: tiny on disk, enormous in memory (a pixel flood)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def clean(name: str, data: bytes):
    return clean_upload(name, io.BytesIO(data))


def refused(name: str, data: bytes) -> str:
    with pytest.raises(FileProblem) as info:
        clean(name, data)
    return str(info.value)


# Refused ----------------------------------------------------------------------------------------

def test_html_renamed_jpg_is_refused(ctx):
    assert refused("receipt.jpg", b"<html><script>alert(document.cookie)</script></html>") == (
        "The selected file must be a PDF, JPG, PNG, HEIC or WebP")


@pytest.mark.parametrize("name", ["drawing.svg", "drawing.png", "drawing.jpg"])
def test_svg_is_refused_whatever_its_name(ctx, name):
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert refused(name, svg) == "The selected file must be a PDF, JPG, PNG, HEIC or WebP"


@pytest.mark.parametrize(("name", "data"), [
    ("photo.jpg", image_bytes("PNG")),  # a real PNG named .jpg
    ("scan.png", plain_pdf()),  # a real PDF named .png
    ("invoice", plain_pdf()),  # no extension
    ("invoice.exe", plain_pdf()),
])
def test_type_must_match_the_extension(ctx, name, data):
    assert refused(name, data) == "The selected file must be a PDF, JPG, PNG, HEIC or WebP"


def test_empty_file_is_refused(ctx):
    assert refused("receipt.pdf", b"") == "The selected file is empty"


def test_file_over_20_mb_is_refused(ctx):
    data = plain_pdf()
    data += b"%" * (20 * 1024 * 1024 + 1 - len(data))
    assert len(data) == 20 * 1024 * 1024 + 1
    assert refused("receipt.pdf", data) == "The selected file must be smaller than 20 MB"


@pytest.mark.parametrize("catalog", [
    "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>",
    "/OpenAction << /S /J#61vaScript /J#53 (app.alert\\(1\\)) >>",  # names hidden with #xx escapes
    "/OpenAction << /S /Launch /F (cmd.exe) >>",
    "/Names << /EmbeddedFiles 4 0 R >>",
    "/AA << /WC << /S /JavaScript /JS (x) >> >>",
])
def test_pdf_with_active_content_is_refused(ctx, catalog):
    data = raw_pdf(catalog, "<< /Names [] >>")
    assert "contains scripts, actions or attached files" in refused("invoice.pdf", data)


def test_pdf_javascript_found_by_parsing_as_well(ctx, monkeypatch):
    """Names inside compressed object streams escape a byte scan: the parsed tree is checked too."""
    monkeypatch.setattr(rf, "pdf_names_in_stream", lambda stream, on_chunk=None: set())
    data = raw_pdf("/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>")
    assert "contains scripts" in refused("invoice.pdf", data)


def test_pdf_javascript_inside_a_compressed_object_stream_is_refused(ctx):
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    action = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)")))
    pdf.Root.OpenAction = action
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate, compress_streams=True)
    data = out.getvalue()
    assert rf.pdf_names_in_bytes(data) == set()  # the byte scan cannot see into the compressed objects…
    assert "contains scripts" in refused("invoice.pdf", data)  # …the object walk does


@pytest.mark.parametrize("shift", [0, 3, 7, 11, 200])
def test_names_cut_by_a_chunk_boundary_are_found(shift):
    """The byte scan reads 1 MB at a time: a name across the boundary is still seen, and stream
    contents across it are still skipped."""
    from portal.storage import CHUNK_SIZE

    name_at = CHUNK_SIZE - shift
    head = b"%PDF-1.7\n1 0 obj\n<< /Length 10 >>\nstream\n" + b"/JS inside a stream is data" + b"\nendstream\n"
    data = head + b"%" + b"x" * (name_at - len(head) - 2) + b"\n" + b"/JavaScript (x)\n%%EOF\n"
    assert data.index(b"/JavaScript") == name_at
    assert rf.pdf_names_in_bytes(data) == {"JavaScript"}
    # and a stream whose end marker straddles the boundary hides its bytes, whatever they look like
    body = b"/JS " * ((CHUNK_SIZE - shift) // 4)
    data = b"%PDF-1.7\n<< /Length 1 >>\nstream\n" + body + b"\nendstream\n<< /Type /Page >>\n"
    assert rf.pdf_names_in_bytes(data) == set()


def big_scan_pdf() -> bytes:
    """A 30 MB scanned page: one 3200 x 3200 RGB image stream of noise."""
    import os

    side = 3200
    pixels = os.urandom(side * side * 3)
    image = (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
             b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels)) + pixels + b"\nendstream")
    return raw_pdf("", image.decode("latin-1"))


def python_memory_peak(work) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_big_pdf_is_checked_without_reading_it_into_memory(ctx):
    """The check reads a 30 MB scan in chunks and never loads the image stream."""
    data = big_scan_pdf()
    peak = python_memory_peak(lambda: rf.check_pdf(io.BytesIO(data)))
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.1f} MB held while checking a {len(data) / 1e6:.0f} MB PDF"


def test_a_big_pdf_is_previewed_without_reading_it_into_memory(ctx, tmp_path):
    """The preview copies the stored stream to a temporary file in chunks for pdfium to read from.
    (A real file here: BytesIO.read() may hand out its buffer without a copy, hiding a whole read.)"""
    from portal.receipts.previews import make_preview

    data = big_scan_pdf()
    stored = tmp_path / "scan.pdf"
    stored.write_bytes(data)
    made = []
    with stored.open("rb") as stream:
        peak = python_memory_peak(lambda: made.append(make_preview(stream, "application/pdf")))
    assert made[0] and made[0][:3] == b"\xff\xd8\xff"  # a JPEG
    assert peak < 4 * 1024 * 1024, f"{peak / 1e6:.1f} MB held while previewing a {len(data) / 1e6:.0f} MB PDF"


def test_pdf_with_an_attachment_made_by_pypdf_is_refused(ctx):
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.add_attachment("payload.exe", b"MZ\x90\x00")
    out = io.BytesIO()
    writer.write(out)
    assert "attached files" in refused("invoice.pdf", out.getvalue())


def test_polyglots_are_refused(ctx):
    # PDF magic, but a web page inside.
    assert refused("invoice.pdf", b"%PDF-1.4\n<html><body><script>alert(1)</script></body></html>")
    # JPEG magic, but no image behind it.
    assert refused("photo.jpg", b"\xff\xd8\xff\xe0" + b"<html><script>alert(1)</script></html>" * 10)
    # A broken PDF that no parser can read.
    assert refused("invoice.pdf", b"%PDF-1.7\n" + b"garbage " * 100)


def test_a_real_jpeg_with_a_payload_appended_is_stored_without_it(ctx):
    data = jpeg_with_gps() + b"<script>alert(1)</script>PK\x03\x04"
    result = clean("photo.jpg", data)
    stored = result.data.read()
    assert b"<script>" not in stored and b"PK\x03\x04" not in stored
    assert result.sha256 != result.original_sha256


def test_pixel_flood_png_is_refused_quickly(ctx):
    flood = png_header_only(20_000, 20_000)  # 400 megapixels in a few kilobytes
    assert len(flood) < 200_000
    started = time.monotonic()
    assert refused("flood.png", flood) == "The selected image is too large – it must have fewer than 50 megapixels"
    assert time.monotonic() - started < 2


def test_image_just_over_the_pixel_limit_is_refused(ctx):
    # Between MAX_IMAGE_PIXELS and twice it Pillow only warns: the warning is a refusal here.
    assert "50 megapixels" in refused("big.png", png_header_only(8_000, 7_000))


def test_truncated_jpeg_is_refused(ctx):
    data = image_bytes("JPEG", size=(300, 200))
    assert "damaged" in refused("photo.jpg", data[: len(data) // 2])


# Accepted and cleaned ---------------------------------------------------------------------------

def test_jpeg_with_gps_exif_is_stored_without_exif(ctx):
    data = jpeg_with_gps()
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825)  # the generator really wrote GPS data
    result = clean("IMG_0001.JPG", data)
    stored = result.data.read()
    assert result.content_type == "image/jpeg" and result.metadata_removed
    assert b"Exif" not in stored and b"PhoneMaker" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert dict(img.getexif()) == {}
        assert img.size == (64, 48)
    assert result.size == len(stored)


@pytest.mark.parametrize(("name", "fmt", "ctype"), [
    ("scan.png", "PNG", "image/png"), ("photo.webp", "WEBP", "image/webp"), ("photo.jpeg", "JPEG", "image/jpeg")])
def test_images_are_reencoded(ctx, name, fmt, ctype):
    result = clean(name, image_bytes(fmt))
    assert result.content_type == ctype
    with Image.open(result.data) as img:
        assert img.format == fmt


def test_plain_pdf_is_accepted_as_is(ctx):
    data = plain_pdf()
    result = clean("Rechnung März.pdf", data)
    assert result.content_type == "application/pdf"
    assert result.data.read() == data
    assert result.filename == "Rechnung März.pdf"


def heic_with_gps() -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(out, "HEIF", exif=exif.tobytes())
    return out.getvalue()


def test_heic_photo_is_stored_as_jpeg_without_location(ctx):
    data = heic_with_gps()
    assert sniff(data) is rf.HEIC
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825)  # the generator really wrote GPS data
    result = clean("IMG_0002.HEIC", data)
    assert result.content_type == "image/jpeg" and result.filename == "IMG_0002.jpg"
    assert result.metadata_removed
    with Image.open(result.data) as stored:
        assert stored.format == "JPEG" and stored.size == (64, 48)
        assert not stored.getexif()


def test_fake_heic_is_refused(ctx):
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    assert sniff(data) is rf.HEIC
    assert refused("IMG_0003.HEIC", data) == str(rf.MSG_UNREADABLE)


@pytest.mark.parametrize(("name", "expected"), [
    ("../../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\windows\\win.ini.pdf", "win.ini.pdf"),
    ("invoice\u202efdp.exe.pdf", "invoicefdp.exe.pdf"),  # the right-to-left override is removed
    ("in\x00voice\r\n.pdf", "invoice.pdf"),
])
def test_path_tricks_leave_only_a_plain_name(ctx, name, expected):
    result = clean(name, plain_pdf())
    assert result.filename == expected
    assert "/" not in result.filename and "\\" not in result.filename
