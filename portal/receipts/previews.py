"""Small previews for reviewers: images scaled down, the first page of a PDF rendered (pdfium).

A preview is made on first request from the stored, already cleaned file and kept in storage next to
it (`previews/…`): a JPEG we encoded ourselves, so it may be shown inline as an <img>.
"""

from __future__ import annotations

import io
import logging
from typing import BinaryIO

from PIL import Image

from portal.storage import CHUNK_SIZE

log = logging.getLogger(__name__)
EDGE = 480  # px, the long edge of a preview


def preview_key(file_id: int, sha256: str) -> str:
    return f"previews/{file_id}-{sha256[:16]}.jpg"


def _pdf_first_page(stream: BinaryIO) -> Image.Image:
    import shutil
    import tempfile

    import pypdfium2 as pdfium

    # pdfium reads what it needs of the file; copied in chunks to a temporary file (the stored object's
    # stream cannot seek), a large scan is never held in memory whole.
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(stream, copy, CHUNK_SIZE)
        copy.seek(0)
        return _render_first_page(pdfium.PdfDocument(copy))


def _render_first_page(pdf) -> Image.Image:
    try:
        page = pdf[0]
        width, height = page.get_size()
        scale = min(4.0, EDGE / max(width, height, 1))
        return page.render(scale=scale).to_pil()
    finally:
        pdf.close()


def make_preview(stream: BinaryIO, content_type: str) -> bytes | None:
    """JPEG bytes of a preview, or None when the file has no picture to show."""
    try:
        if content_type == "application/pdf":
            img = _pdf_first_page(stream)
        elif content_type.startswith("image/"):
            img = Image.open(stream)
            img.draft("RGB", (EDGE, EDGE))  # JPEG: decode at a reduced size straight away
        else:
            return None
        img = img.convert("RGB")
        img.thumbnail((EDGE, EDGE))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
        return out.getvalue()
    except Exception as exc:  # noqa: BLE001 - a preview is a convenience: never fail the page for it
        log.warning("no preview: %s", exc)
        return None
