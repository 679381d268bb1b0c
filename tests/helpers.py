"""Helpers shared by test modules (plain functions, no fixtures)."""

from __future__ import annotations

import io
import os
import re
from base64 import b64encode
from contextlib import contextmanager
from urllib.parse import urlsplit
from uuid import uuid4

import pyotp
import sqlalchemy as sa
from PIL import Image
from pypdf import PdfWriter
from sqlalchemy import event
from sqlmodel import Session, select

from portal import audit
from portal.receipts.models import Receipt, ReceiptFile
from portal.storage import get_storage
from tests.factories import (
    _seq,
    make_case,
    make_org,
    make_user,
    pdf_of_objects,
)

S3_ENDPOINT = os.environ.get("S3_ENDPOINT_URL", "")


def unique_pdf() -> bytes:
    """A valid PDF whose bytes (and so SHA-256) differ from every other one made here."""
    return plain_pdf() + f"% {uuid4().hex}\n".encode()


def fields(w, **kw) -> dict:
    data = {"budget_line_id": str(w["line"].id), "supplier": "Tbilisi Tools Ltd", "invoice_number": uuid4().hex[:10],
            "invoice_date": "2024-03-15", "amount": "250.00", "currency": "EUR",
            "description": "Welding machine and safety gear", "translation": "", "paid_directly": "y",
            "nonce": uuid4().hex}
    data.update(kw)
    return data


def upload(client, w, files=None, handover=None, **kw):
    data = fields(w, **kw)
    data["files"] = files if files is not None else [(io.BytesIO(unique_pdf()), "invoice.pdf")]
    if handover:
        data["handover"] = handover
    return client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")


def new_receipt(client, w, **kw) -> Receipt:
    resp = upload(client, w, **kw)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    receipt_id = int(resp.location.rsplit("/", 1)[-1])
    return receipt_id


def load(db: Session, receipt_id: int) -> Receipt:
    db.expire_all()
    return db.get(Receipt, receipt_id)


def stored_keys(app) -> set[str]:
    with app.app_context():
        return set(get_storage().keys("receipts/"))


def sweep(app, minutes=0):
    return app.test_cli_runner().invoke(args=["receipts", "sweep", "--minutes", str(minutes)])


def switch(client, user):
    """Sign out whoever is signed in, then sign in as user."""
    client.submit("/logout")
    client.login(user)


def jpeg_with_gps(size=(64, 48)) -> bytes:
    img = Image.new("RGB", size, "red")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0112] = 1  # orientation
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def plain_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def raw_pdf(catalog_extra: str, extra_objects: str = "") -> bytes:
    """A small hand-written PDF (with a correct-enough xref) whose catalog carries catalog_extra."""
    objs = [
        f"<< /Type /Catalog /Pages 2 0 R {catalog_extra} >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    if extra_objects:
        objs.append(extra_objects)
    return pdf_of_objects([body.encode("latin-1") for body in objs])


def form(**kw) -> dict:
    n = next(_seq)
    data = {"name": f"Amina Diallo {n}", "email": f"amina{n}@example.org", "organisation": "Dakar Return Desk",
            "country": "SN", "role": "return_country", "languages": "French, Wolof", "dietary_needs": "",
            "accessibility_needs": "", "consent_processing": "y"}
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def link_path(message, kind: str) -> str:
    """The path of the confirm/manage link in a mail (the mails link to BASE_URL)."""
    url = re.search(rf"(http\S+/workshops/{kind}/\S+)", body(message)).group(1)
    return urlsplit(url).path


def register(client, workshop, **kw):
    data = form(**kw)
    resp = client.submit(f"/workshops/join/{workshop.public_key}", data)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    return data


def register_and_confirm(client, mails, workshop, **kw) -> dict:
    data = register(client, workshop, **kw)
    confirm = link_path(mails.to(data["email"])[-1], "confirm")
    resp = client.submit(confirm)
    assert resp.status_code == 303
    return data


def staff_client(client, db):
    staff = make_user(db, role="staff", name="Stefan Staff")
    client.login(staff)
    return staff


def item_ids(html: str) -> list[str]:
    """The queue's items, in the order shown."""
    return re.findall(r'<li id="((?:receipt|visit|sample)-\d+)">', html)


def key(obj) -> str:
    return f"{'visit' if type(obj).__name__ == 'Visit' else 'receipt'}-{obj.id}"

@contextmanager
def count_statements(app):
    statements: list[str] = []

    def _count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _count)


KEY_RE = re.compile(r'name="draft_key"[^>]*value="([0-9a-f]{32})"')


def visit_form(key: str, **kw) -> dict:
    return {"draft_key": key, "visit_date": "2025-03-01", "visit_time": "10:30", "mode": "business",
            "purpose": "monitoring", "place": "Rustavi market", "attendees": "returnee, spouse",
            "returnee_met": "yes", "not_met_reason": "", "goods_state": "in_use", "business_status": "operating",
            "income_band": "100_300", "people_employed": "2", "score_economic": "3", "score_social": "4",
            "score_psychosocial": "2", "flag_details": "", "actions_taken": "Advice on bookkeeping",
            "next_visit_date": "2025-06-01", "notes": "The workshop is open six days a week.", **kw}


def open_form(client, case) -> tuple[str, str]:
    """Open the visit form as a page (a fresh page load, also from the htmx client)."""
    was, client.htmx = client.htmx, False
    try:
        resp = client.get(f"/cases/{case.id}/visits/new")
    finally:
        client.htmx = was
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    return KEY_RE.search(page).group(1), page


def partner_with_case(db, **case_kw):
    org = make_org(db)
    staff = make_user(db, role="staff", locale="de")
    case = make_case(db, org, created_by_id=staff.id, **case_kw)
    return org, staff, case, make_user(db, organisation=org)


def _write_entries(app, n: int, actor=None):
    with Session(app.extensions["db_engine"]) as s:
        for i in range(n):
            audit.record(s, actor, "test.action", ("Thing", i), None, {"i": i, "text": "Grüße, مرحبا"})
            s.commit()


def _drop_guard(db):
    """What an attacker with database admin rights could do: switch the append-only guard off."""
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
        conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
    db.commit()


CLAMD_HOST = os.environ.get("TEST_CLAMD_HOST", "")


CLAMD_PORT = int(os.environ.get("TEST_CLAMD_PORT", "3310"))


EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def pdf_with_comment(comment: bytes) -> bytes:
    """A real one-page PDF (no scripts) whose page content stream carries `comment` as a PDF comment."""
    content = b"0 0 1 rg 20 20 100 50 re f\n%" + comment + b"\n"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream"]
    return pdf_of_objects(objs, header=b"%PDF-1.7\n%" + uuid4().hex.encode() + b"\n")


def eicar_pdf() -> bytes:
    return pdf_with_comment(EICAR)


def clean_pdf() -> bytes:
    return plain_pdf() + f"% {uuid4().hex}\n".encode()


def scan_upload(client, w, files, handover=None):
    data = {"budget_line_id": str(w["line"].id), "supplier": "Tbilisi Tools Ltd", "invoice_number": uuid4().hex[:10],
            "invoice_date": "2024-03-15", "amount": "250.00", "currency": "EUR",
            "description": "Welding machine", "translation": "", "paid_directly": "y", "nonce": uuid4().hex,
            "files": files}
    if handover:
        data["handover"] = handover
    return client.submit(f"/cases/{w['case'].id}/receipts/new", data, content_type="multipart/form-data")


def files_of(db, receipt_id) -> dict[str, ReceiptFile]:
    db.expire_all()
    return {row.original_filename: row for row in db.exec(select(ReceiptFile).where(
        ReceiptFile.receipt_id == receipt_id))}


SECRET_RE = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')


CODES_RE = re.compile(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>")


def enrol(client) -> tuple[str, list[str]]:
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code
    secret = SECRET_RE.search(page).group(1)
    resp = client.submit("/account/two-factor", {"code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 200
    codes = CODES_RE.findall(resp.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def next_code(secret: str, db, user) -> str:
    """A code not used yet: the step after the last accepted one (within the one-step drift allowed)."""
    db.refresh(user)
    return pyotp.TOTP(secret).at((user.totp_last_step + 1) * 30)


# Resumable uploads (tus 1.0) through the test client ---------------------------------------------------

def b64(value) -> str:
    return b64encode(str(value).encode()).decode()


def metadata(**items) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in items.items())


def tus_headers(client, **extra) -> dict:
    if not getattr(client, "_csrf", None):
        client._csrf = client.csrf_token()
    return {"Tus-Resumable": "1.0.0", "X-CSRFToken": client._csrf, **extra}


def create(client, case_id, length, filename="invoice.pdf", purpose="receipt", **meta):
    return client.post("/uploads/", headers=tus_headers(client, **{
        "Upload-Length": str(length),
        "Upload-Metadata": metadata(filename=filename, filetype="application/pdf", purpose=purpose, case=case_id,
                                    **meta)}))


def patch(client, url, body: bytes, offset: int):
    return client.open(url, method="PATCH", data=body, headers=tus_headers(
        client, **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}))


def upload_file(client, case_id, data: bytes, filename="invoice.pdf", purpose="receipt", piece=4096, **meta) -> str:
    """The whole file in pieces; returns the token."""
    resp = create(client, case_id, len(data), filename, purpose, **meta)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    url = resp.headers["Location"]
    for start in range(0, len(data), piece):
        resp = patch(client, url, data[start:start + piece], start)
        assert resp.status_code == 204, resp.get_data(as_text=True)
    return url.rsplit("/", 1)[-1]
