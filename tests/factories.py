"""Plain factories: make_x(db, **overrides) returns a saved object."""

from __future__ import annotations

import itertools

from sqlmodel import Session

from portal.auth.models import User
from portal.auth.services import hasher
from portal.cases.models import BudgetLine, Case
from portal.orgs.models import Organisation

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
