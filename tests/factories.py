"""Plain factories: make_x(db, **overrides) returns a saved object."""

from __future__ import annotations

import itertools
import secrets
from datetime import date, timedelta
from uuid import uuid4

from sqlmodel import Session

from portal.auth.models import User
from portal.auth.services import hasher
from portal.cases.models import BudgetLine, Case
from portal.ocr.models import ReceiptText
from portal.orgs.models import Organisation
from portal.receipts.models import RateEvidence, Receipt, ReceiptFile
from portal.review.models import SampleDraw, SampleItem
from portal.visits.models import Visit, VisitPhoto
from portal.workshop.models import Registration, Workshop

PASSWORD = "a long test password 2025"  # noqa: S105
_seq = itertools.count(1)
_HASH = hasher.hash(PASSWORD)


def make_org(db: Session, **kw) -> Organisation:
    n = next(_seq)
    org = Organisation(**{"name": f"Partner {n}", "country": "GE", "contact_email": f"org{n}@example.org", **kw})
    db.add(org)
    db.commit()
    return org


def make_user(db: Session, role: str = "partner", organisation: Organisation | None = None, **kw) -> User:
    n = next(_seq)
    if role == "partner" and organisation is None and "organisation_id" not in kw:
        organisation = make_org(db)
    user = User(**{"email": f"user{n}@example.org", "name": f"User {n}", "role": role,
                   "organisation_id": organisation.id if organisation else None,
                   "password_hash": _HASH, "locale": "en", **kw})
    db.add(user)
    db.commit()
    return user


def make_case(db: Session, organisation: Organisation, **kw) -> Case:
    n = next(_seq)
    case = Case(**{"reference": f"IP-2099-{n:04d}", "country": organisation.country,
                   "organisation_id": organisation.id, "measure_type": "business", **kw})
    db.add(case)
    db.commit()
    return case


def make_line(db: Session, case: Case, **kw) -> BudgetLine:
    line = BudgetLine(**{"case_id": case.id, "category": "equipment", "description": "Tools",
                         "planned_cents": 100_000, **kw})
    db.add(line)
    db.commit()
    return line


def pdf_of_objects(objects: list[bytes], header: bytes = b"%PDF-1.7\n") -> bytes:
    """A PDF written by hand: the objects numbered from 1 (the first is the catalog), with a correct
    cross-reference table. For files no PDF library would write (test corpus, benchmark scans)."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_receipt(db: Session, case, line=None, **kw) -> Receipt:
    """A submitted receipt written straight to the database (for tests that need one, e.g. isolation)."""
    receipt = Receipt(**{"case_id": case.id, "budget_line_id": line.id if line else None, "supplier": "Supplier",
                         "invoice_number": uuid4().hex[:8], "invoice_date": date(2024, 3, 1), "amount_minor": 1000,
                         "currency": "EUR", "eur_cents": 1000, "description": "Goods", "status": "submitted",
                         "nonce": uuid4().hex, "paid_directly_confirmed": True, **kw})
    db.add(receipt)
    db.commit()
    return receipt


def make_receipt_file(db: Session, receipt: Receipt, **kw) -> ReceiptFile:
    row = ReceiptFile(**{"receipt_id": receipt.id, "key": f"receipts/{receipt.case_id}/{uuid4().hex}", "size": 3,
                         "sha256": uuid4().hex * 2, "original_sha256": uuid4().hex * 2,
                         "content_type": "application/pdf", "original_filename": "x.pdf", "confirmed": True, **kw})
    db.add(row)
    db.commit()
    return row


def make_receipt_text(db: Session, receipt: Receipt, text: str, **kw) -> ReceiptText:
    """What text recognition read on the receipt's first file, written straight to the database."""
    row = ReceiptText(**{"receipt_id": receipt.id, "status": "read", "text": text, "engine": "test", **kw})
    db.add(row)
    db.commit()
    return row


def make_rate_evidence(db: Session, **kw) -> RateEvidence:
    """A kept rate file's row (the object itself is not stored: for tests that only need the row)."""
    sha = uuid4().hex * 2
    row = RateEvidence(**{"original_filename": "inforeuro.xlsx", "content_type": "text/csv", "size": 3,
                          "sha256": sha, "key": f"rates/{sha}.csv", **kw})
    db.add(row)
    db.commit()
    return row


TODAY = date.today()


def make_workshop(db: Session, **kw) -> Workshop:
    w = Workshop(**{"public_key": secrets.token_urlsafe(12), "title": "Advisor exchange",
                    "description": "Three days of exchange.", "starts_on": TODAY + timedelta(days=30),
                    "ends_on": TODAY + timedelta(days=32), "city": "Berlin", "venue": "Haus der Kulturen",
                    "capacity": 2, "registration_deadline": TODAY + timedelta(days=20),
                    "working_languages": "English, French", "travel_support": True, "visa_letters": True,
                    "moderated": False, **kw})
    db.add(w)
    db.commit()
    return w


def make_registration(db: Session, workshop: Workshop, **kw) -> Registration:
    n = next(_seq)
    reg = Registration(**{"workshop_id": workshop.id, "status": "confirmed", "email": f"reg{n}@example.org",
                          "name": f"Registrant {n}", "organisation": "Caritas", "country": "GE",
                          "role": "return_country", "consent_processing": True, "locale": "en",
                          "link_nonce": secrets.token_urlsafe(16), **kw})
    db.add(reg)
    db.commit()
    return reg


def make_visit(db: Session, case, **kw) -> Visit:
    import uuid

    visit = Visit(**{"case_id": case.id, "draft_key": uuid.uuid4().hex, "visit_date": date(2025, 3, 1),
                     "mode": "home", "purpose": "monitoring", "score_economic": 3, "score_social": 3,
                     "score_psychosocial": 3, **kw})
    db.add(visit)
    db.commit()
    return visit


def make_visit_photo(db: Session, visit: Visit, **kw) -> VisitPhoto:
    import uuid

    photo = VisitPhoto(**{"visit_id": visit.id, "key": f"visits/{visit.case_id}/{uuid.uuid4().hex}",
                          "content_type": "image/jpeg", "original_filename": "p.jpg", "consent": True,
                          "confirmed": True, **kw})
    db.add(photo)
    db.commit()
    return photo


def make_sample(db, receipt) -> SampleItem:
    """A draw with one item: the receipt (for tests that need a sample, e.g. isolation)."""
    draw = SampleDraw(period_start=date(2024, 1, 1), period_end=date(2024, 12, 31), share_permille=100,
                      population=1, drawn=1)
    db.add(draw)
    db.commit()
    item = SampleItem(draw_id=draw.id, receipt_id=receipt.id)
    db.add(item)
    db.commit()
    return item


def big_pdf(padding: int) -> bytes:
    """A valid one-page PDF of about `padding` more bytes (random data in an unused stream), unique each time.
    Bytes after %%EOF would make qpdf repair the file, which the upload checks refuse."""
    import os

    data = os.urandom(padding)
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream",
    ])


def ocr_set():
    """scripts/bench/ocr_set.py, the generator of receipt pictures and PDFs with their true fields."""
    import importlib.util
    import sys
    from pathlib import Path

    if "ocr_set" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "ocr_set.py"
        spec = importlib.util.spec_from_file_location("ocr_set", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["ocr_set"] = module
        spec.loader.exec_module(module)
    return sys.modules["ocr_set"]


def make_receipt_picture(seed: int, lang: str, layout: str = "centred", kind: str = "png"):
    """A generated receipt (clean, not degraded) as PNG or text-PDF bytes, with its true fields."""
    import io

    gen = ocr_set()
    spec = gen.receipt(seed, lang, layout)
    if kind == "pdf":
        data = gen.text_pdf(spec)
    else:
        out = io.BytesIO()
        gen.clean_image(spec).save(out, "PNG")
        data = out.getvalue()
    truth = spec.truth()
    return data, {"supplier": truth["supplier"], "invoice_number": truth["invoice_number"],
                  "invoice_date": truth["date"], "amount": truth["amount"], "currency": truth["currency"]}
