"""Small previews for reviewers: images scaled down, the first page of a PDF rendered (pdfium).

A preview is made on first request from the stored, already cleaned file and kept in storage next to
it (`previews/…`): a JPEG we encoded ourselves, so it may be shown inline as an <img>.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import BinaryIO

from PIL import Image
from sqlmodel import Session, select

from portal.receipts.models import FileKind, ReceiptFile
from portal.scanning import services as scanning
from portal.storage import CHUNK_SIZE, Storage, StorageError

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


def first_files(db: Session, receipt_ids: Iterable[int]) -> dict[int, ReceiptFile]:
    """The first receipt file (not a handover proof) of each receipt, in one statement: what a preview shows."""
    ids = sorted(set(receipt_ids))
    if not ids:
        return {}
    found: dict[int, ReceiptFile] = {}
    for row in db.exec(select(ReceiptFile).where(ReceiptFile.receipt_id.in_(ids), ReceiptFile.confirmed.is_(True),
                                                 ReceiptFile.kind == FileKind.RECEIPT)
                       .order_by(ReceiptFile.receipt_id, ReceiptFile.id)):
        found.setdefault(row.receipt_id, row)
    return found


def has_preview(row: ReceiptFile | None) -> bool:
    """Whether the desk may show the file's picture: an image or PDF the virus scanner has cleared."""
    return row is not None and scanning.is_cleared(row) and (
        row.content_type == "application/pdf" or row.content_type.startswith("image/"))


def preview(storage: Storage, row: ReceiptFile) -> bytes | None:
    """The preview JPEG of a stored file: made once from the stored file, then kept in storage.

    A file that is not there has no preview (None); a storage that cannot be reached raises
    StorageError, which the user sees as "try again in a few minutes" (503), not as "not found".
    """
    key = preview_key(row.id, row.sha256)
    try:
        if storage.exists(key):
            with storage.open(key) as fh:
                return fh.read()
        with storage.open(row.key) as fh:
            data = make_preview(fh, row.content_type)
    except FileNotFoundError:
        return None
    if data is not None:
        try:
            storage.put(key, io.BytesIO(data), content_type="image/jpeg")
        except StorageError as exc:  # shown now, made again next time
            log.warning("preview of %s not kept: %s", row.key, exc)
    return data
