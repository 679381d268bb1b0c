"""Uploaded files, made safe before they are stored.

The type is read from the first bytes and must agree with the extension and the allowed list.
Images are decoded and re-encoded with Pillow: what is stored is fresh pixels without EXIF (GPS!),
comments, colour profiles (converted to sRGB) or trailing data. PDFs that carry scripts, launch actions or embedded files are refused.
HEIC/HEIF photos (iPhones) are decoded with pillow-heif and stored as JPEG, also without metadata.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from portal.storage import CHUNK_SIZE, Digest, safe_download_name

MAX_PIXELS = 50_000_000
# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; both are refusals here.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
register_heif_opener()

MSG_WRONG_TYPE = _l("The selected file must be a PDF, JPG, PNG, HEIC or WebP")
MSG_EMPTY = _l("The selected file is empty")
MSG_FAILED = _l("The selected file could not be uploaded – try again")
MSG_UNREADABLE = _l("The selected file is damaged or not a real PDF or image – choose another file")
MSG_PIXELS = _l("The selected image is too large – it must have fewer than 50 megapixels")
MSG_ACTIVE_PDF = _l("The selected PDF contains scripts, actions or attached files – save it again as a "
                    "plain PDF or upload a photo of the receipt")
MSG_ENCRYPTED = _l("The selected PDF is password protected – upload a copy without a password")


@dataclass(frozen=True)
class Kind:
    name: str
    content_type: str
    extensions: tuple[str, ...]


PDF = Kind("pdf", "application/pdf", (".pdf",))
JPEG = Kind("jpeg", "image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"))
PNG = Kind("png", "image/png", (".png",))
WEBP = Kind("webp", "image/webp", (".webp",))
HEIC = Kind("heic", "image/heic", (".heic", ".heif"))
KINDS = (PDF, JPEG, PNG, WEBP, HEIC)
ACCEPT = ",".join(ext for kind in KINDS for ext in kind.extensions) + ",application/pdf,image/jpeg,image/png," \
    "image/webp,image/heic,image/heif"

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_PILLOW_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}


def max_upload_mb() -> int:
    """The largest file accepted, in MB (RECEIPT_MAX_MB: 20 unless the operator allows more)."""
    return int(current_app.config["RECEIPT_MAX_MB"])


class FileProblem(ValueError):
    """The file cannot be accepted; str() is the message for the person who chose it."""


@dataclass
class CleanFile:
    """A file ready to store: the bytes to keep and what the database records about them."""

    data: BinaryIO  # seekable, positioned anywhere; storage rewinds it
    size: int
    sha256: str
    original_sha256: str
    content_type: str
    filename: str
    metadata_removed: bool
    md5: str = ""  # base64, of the bytes to keep: storage sends it as Content-MD5 without another pass


def sniff(head: bytes) -> Kind | None:
    """The allowed type these first bytes belong to, or None."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return HEIC
    return None


def _sha256(stream: BinaryIO) -> str:
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def _size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def clean_upload(filename: str, stream: BinaryIO) -> CleanFile:
    """Check one uploaded file and return what may be stored; FileProblem with the reason otherwise."""
    size = _size(stream)
    if size == 0:
        raise FileProblem(str(MSG_EMPTY))
    if size > max_upload_mb() * 1024 * 1024:
        raise FileProblem(gettext("The selected file must be smaller than %(size)s MB", size=max_upload_mb()))
    name = safe_download_name(filename)[:150]
    kind = sniff(stream.read(32))
    stream.seek(0)
    extension = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if kind is None or extension not in kind.extensions:
        raise FileProblem(str(MSG_WRONG_TYPE))
    if kind is PDF:  # stored as uploaded: one pass reads, checks and hashes it
        digest = Digest()
        check_pdf(stream, on_chunk=digest.update)
        return CleanFile(data=stream, size=size, sha256=digest.sha256, original_sha256=digest.sha256,
                         content_type=PDF.content_type, filename=name, metadata_removed=False,
                         md5=digest.md5_base64)
    original_sha256 = _sha256(stream)
    data = reencode_image(stream, kind)
    content_type = kind.content_type
    if kind is HEIC:  # stored as the JPEG it was re-encoded to: every reviewer's browser opens that
        content_type, name = JPEG.content_type, name.rsplit(".", 1)[0] + ".jpg"
    data.seek(0)
    digest = Digest.of_stream(data)
    data.seek(0)
    return CleanFile(data=data, size=digest.size, sha256=digest.sha256, original_sha256=original_sha256,
                     content_type=content_type, filename=name, metadata_removed=True, md5=digest.md5_base64)


# Images -----------------------------------------------------------------------------------------

def reencode_image(stream: BinaryIO, kind: Kind) -> BinaryIO:
    """Decode the image and encode its pixels again: no EXIF, GPS, comments or appended data survive."""
    fmt = _PILLOW_FORMAT[kind.name]
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream, formats=[fmt]) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise FileProblem(str(MSG_PIXELS))
                img.load()
                icc = img.info.get("icc_profile")
                # Keep the photo the right way up once the EXIF orientation tag is gone.
                pixels = ImageOps.exif_transpose(img)
                pixels = _to_srgb(pixels, icc)
                # Pillow's writers copy what `info` holds (JPEG comments, the ICC profile, EXIF, XMP):
                # nothing of it is kept but a palette image's transparent colour.
                pixels.info = {k: v for k, v in pixels.info.items() if k == "transparency"}
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise FileProblem(str(MSG_PIXELS)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, FileProblem):
            raise
        raise FileProblem(str(MSG_UNREADABLE)) from None
    out = io.BytesIO()  # at most ~50 MP of pixels, encoded: kept in memory until stored
    if fmt in ("JPEG", "HEIF"):
        if pixels.mode not in ("RGB", "L", "CMYK"):
            pixels = pixels.convert("RGB")
        pixels.save(out, "JPEG", quality=90, optimize=True, comment=b"")
    elif fmt == "PNG":
        pixels.save(out, "PNG")
    else:
        pixels.save(out, "WEBP", quality=90, exif=b"", xmp=b"")
    out.seek(0)
    return out


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """The pixels converted from the image's own colour profile to sRGB (what browsers assume without
    one), so the profile's bytes (which can carry text: a device or place name) need not be kept. An
    unreadable profile is dropped and the pixels kept as they are."""
    if not icc:
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode not in ("RGB", "RGBA", "CMYK", "L"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(img, source, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img


_SRGB = ImageCms.createProfile("sRGB")


# PDFs -------------------------------------------------------------------------------------------

# Names whose presence means the PDF can run code, open other programs or smuggle files.
FORBIDDEN_PDF_NAMES = frozenset({
    "JavaScript", "JS", "Launch", "EmbeddedFile", "EmbeddedFiles", "RichMedia", "XFA", "SubmitForm",
    "ImportData", "GoToE",
})
_PDF_NAME = re.compile(rb"/((?:[A-Za-z0-9_.+\-]|#[0-9A-Fa-f]{2})+)")
_STREAM_START = re.compile(rb"stream\r?\n")
_STREAM_END = b"endstream"
# Bytes kept back at the end of each chunk, so a keyword or name cut by the chunk boundary is whole in
# the next round; a name longer than this cannot be a forbidden one.
_CARRY = 256
_DELIMITERS = b" \t\r\n\f\x00()<>[]{}/%"
_MAX_PDF_OBJECTS = 200_000


def _decode_name(raw: bytes) -> str:
    # PDF names may hide letters as #xx escapes (/J#61vaScript is /JavaScript).
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw).decode("latin-1")


def _forbidden_in(region: bytes) -> set[str]:
    return {name for raw in _PDF_NAME.findall(region) if (name := _decode_name(raw)) in FORBIDDEN_PDF_NAMES}


def _cut_before_name(buf: bytes, start: int, limit: int) -> int:
    """The last delimiter before limit: names never straddle it (limit itself when there is none)."""
    cut = max(buf.rfind(bytes([d]), start, limit) for d in _DELIMITERS)
    return cut if cut > start else limit


def pdf_names_in_stream(stream: BinaryIO, on_chunk=None) -> set[str]:
    """The forbidden names written in the file's objects, read in chunks (never the whole file at once).

    Stream contents are skipped: compressed bytes would match "/JS" by chance; what streams hold as
    objects, the parsed tree shows. `on_chunk` sees every chunk read (the caller hashes the file in the
    same pass).
    """
    found: set[str] = set()
    in_stream = False
    buf = b""
    stream.seek(0)
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if chunk and on_chunk:
            on_chunk(chunk)
        buf += chunk
        limit = len(buf) if not chunk else max(0, len(buf) - _CARRY)
        pos = 0
        while pos < limit:
            if in_stream:
                end = buf.find(_STREAM_END, pos)
                if end == -1 or end >= limit:
                    pos = limit  # the stream's bytes are skipped, not kept
                    break
                pos, in_stream = end + len(_STREAM_END), False
                continue
            match = _STREAM_START.search(buf, pos)
            if match and match.start() < limit:
                found |= _forbidden_in(buf[pos:match.start()])
                pos, in_stream = match.end(), True
                continue
            cut = limit if not chunk else _cut_before_name(buf, pos, limit)
            found |= _forbidden_in(buf[pos:cut])
            pos = cut
            break
        buf = buf[pos:]
        if not chunk:
            break
    stream.seek(0)
    return found


def pdf_names_in_bytes(data: bytes) -> set[str]:
    return pdf_names_in_stream(io.BytesIO(data))


# Markup that makes a PDF also a web page (a polyglot), wherever in the file it is: some viewers and
# browsers sniff past the first kilobyte.
_HTML_MARKERS = (b"<html", b"<script", b"<svg", b"<!doctype html", b"<iframe", b"<body", b"<object", b"<embed")
_HTML = re.compile(b"|".join(re.escape(m) for m in _HTML_MARKERS), re.IGNORECASE)
_HTML_CARRY = max(len(m) for m in _HTML_MARKERS) - 1


class _MarkupScan:
    """Sees every chunk of the file once (in the same pass as the name scan and the hash), without
    copying it: the chunk is searched as it is, and the few bytes around each boundary on their own."""

    def __init__(self, on_chunk=None):
        self.on_chunk, self.tail, self.found = on_chunk, b"", False

    def __call__(self, chunk: bytes) -> None:
        if self.on_chunk:
            self.on_chunk(chunk)
        if not self.found and (_HTML.search(chunk) or _HTML.search(self.tail + chunk[:_HTML_CARRY])):
            self.found = True
        self.tail = chunk[-_HTML_CARRY:]


def check_pdf(stream: BinaryIO, on_chunk=None) -> None:
    """Refuse PDFs with active content, found in the raw bytes or in the parsed object tree; PDFs that
    are also web pages; and PDFs so damaged that qpdf would have to repair them to read them.

    Memory stays small whatever the file's size: the bytes are read in chunks, and the object tree is
    read by qpdf (pikepdf), which parses dictionaries without loading stream data (a scanned page's
    image of many megabytes is never read into memory).
    """
    markup = _MarkupScan(on_chunk)
    if pdf_names_in_stream(stream, markup):
        raise FileProblem(str(MSG_ACTIVE_PDF))
    if markup.found:
        raise FileProblem(str(MSG_UNREADABLE))  # a polyglot that is also a web page
    _check_pdf_tree(stream)


_SAFE_URI_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_URI_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
# Actions a viewer runs by itself (on opening the file or a page) may only go to a place in the file.
_AUTOMATIC = ("/OpenAction", "/AA")


def _unsafe_uri(value) -> bool:
    """A link to javascript:, data:, file: and the like (browsers drop spaces and control characters)."""
    try:
        text = bytes(value).decode("latin-1") if not isinstance(value, str) else value
    except (TypeError, ValueError):
        return True
    text = "".join(ch for ch in text if ord(ch) > 0x20).lower()
    match = _URI_SCHEME.match(text)
    return bool(match) and match.group(1) not in _SAFE_URI_SCHEMES


def _unsafe_automatic_action(value, pikepdf) -> bool:
    """An /OpenAction or /AA entry that does anything but go to a place in the document."""
    if isinstance(value, pikepdf.Array):
        return False  # a destination: a page to show
    if not isinstance(value, pikepdf.Dictionary):
        return False
    if "/S" in value:
        return value.get("/S") != pikepdf.Name.GoTo
    # /AA: a dictionary of triggers, each an action
    return any(isinstance(v, pikepdf.Dictionary) and v.get("/S") != pikepdf.Name.GoTo for v in value.values())


def _forbidden_object(obj, pikepdf) -> bool:
    """Whether this object or the direct objects inside it carry a forbidden name (indirect ones are
    checked on their own, as every object of the file is)."""
    todo, seen = [obj], 0
    while todo:
        item = todo.pop()
        seen += 1
        if seen > _MAX_PDF_OBJECTS:
            raise FileProblem(str(MSG_UNREADABLE))
        if isinstance(item, pikepdf.Name):
            if str(item)[1:] in FORBIDDEN_PDF_NAMES:
                return True
        elif isinstance(item, pikepdf.Dictionary | pikepdf.Stream):
            for key in item.keys():  # noqa: SIM118 - pikepdf objects have keys(), no iteration of keys
                if key[1:] in FORBIDDEN_PDF_NAMES:
                    return True
                value = item.get(key)
                if key == "/URI" and isinstance(value, pikepdf.String) and _unsafe_uri(value):
                    return True
                if key in _AUTOMATIC and _unsafe_automatic_action(value, pikepdf):
                    return True
                if not getattr(value, "is_indirect", False):
                    todo.append(value)
        elif isinstance(item, pikepdf.Array):
            todo.extend(v for v in item if not getattr(v, "is_indirect", False))
    return False


# qpdf's words for a file it had to repair (it also "repairs" harmless things, such as a page without
# /Resources, which are not refused).
_DAMAGE = ("damaged", "reconstruct", "recover", "parse error", "expected endobj", "unexpected eof",
           "expected endstream")


def _check_pdf_tree(stream: BinaryIO) -> None:
    # Names can also hide in compressed object streams: look at every object of the file.
    import pikepdf

    stream.seek(0)
    try:
        # No repairs: a file qpdf must reconstruct to read is read differently by every viewer.
        with pikepdf.open(stream, access_mode=pikepdf.AccessMode.stream, attempt_recovery=False) as pdf:
            if pdf.is_encrypted:
                raise FileProblem(str(MSG_ENCRYPTED))
            if len(pdf.pages) < 1:
                raise FileProblem(str(MSG_UNREADABLE))
            for count, obj in enumerate(pdf.objects):
                if count > _MAX_PDF_OBJECTS:
                    raise FileProblem(str(MSG_UNREADABLE))
                if _forbidden_object(obj, pikepdf):
                    raise FileProblem(str(MSG_ACTIVE_PDF))
            if any(marker in warning.lower() for warning in pdf.get_warnings() for marker in _DAMAGE):
                raise FileProblem(str(MSG_UNREADABLE))
    except pikepdf.PasswordError:
        raise FileProblem(str(MSG_ENCRYPTED)) from None
    except FileProblem:
        raise
    except (pikepdf.PdfError, ValueError, TypeError, RecursionError, OSError, RuntimeError):
        raise FileProblem(str(MSG_UNREADABLE)) from None
    finally:
        stream.seek(0)
