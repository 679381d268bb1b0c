"""Demo data for the run command and the browser tests. These accounts exist only in the demo."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

from sqlmodel import Session, func, select

from portal.auth.models import User
from portal.auth.services import create_user
from portal.cases import services as cases
from portal.cases.models import Case, CaseStatus
from portal.orgs.services import save_org

DEMO_PASSWORD = "demo-password-2025"  # noqa: S105 - published demo password

ORGS = [
    {"name": "Tbilisi Reintegration Centre", "country": "GE", "contact_email": "office@trc.example.org"},
    {"name": "Association Retour Dakar", "country": "SN", "contact_email": "contact@ard.example.org"},
]

CASES = [  # (org index, country, measure, status, return date, lines [(category, description, EUR)])
    (0, "GE", "business", "active", date(2024, 3, 12),
     [("equipment", "Sewing machines (2) for a tailoring workshop", 2400), ("stock", "Fabric and thread", 800)]),
    (0, "GE", "vocational", "planned", date(2024, 9, 2),
     [("training", "Course: certified welder, 6 months", 1800)]),
    (0, "GE", "both", "monitoring", date(2024, 1, 20),
     [("training", "Barista course", 600), ("equipment", "Espresso machine", 3100)]),
    (1, "SN", "business", "active", date(2024, 5, 7),
     [("equipment", "Motor pump for irrigation", 1500), ("stock", "Seeds and fertiliser", 700)]),
    (1, "SN", "vocational", "planned", date(2025, 2, 14),
     [("training", "Mobile phone repair course", 900), ("equipment", "Repair tool kit", 450)]),
]


DEMO_EMAILS = ("admin@example.org", "staff@example.org", "staff2@example.org", "partner.a@example.org",
               "partner.b@example.org")


class DemoRefused(RuntimeError):
    """Loading the demo here would put published passwords into a real portal."""


def check_demo_allowed(db: Session, portal_env: str) -> None:
    """Raise DemoRefused in production and on a database that has accounts other than the demo ones."""
    if portal_env == "production":
        raise DemoRefused("refused: PORTAL_ENV=production. The demo creates an admin account whose password "
                          "is published in the README; load it only into a development database.")
    others = db.exec(select(func.count()).select_from(User).where(User.email.not_in(DEMO_EMAILS))).one()
    if others:
        raise DemoRefused(f"refused: this database already has {others} account(s) that are not demo accounts. "
                          "The demo adds accounts with a published password; use an empty database.")


def load_demo(db: Session) -> str:
    if db.exec(select(User).where(User.email == "admin@example.org")).first():
        return "demo data already present"
    orgs = [save_org(db, None, None, {**o, "active": True}) for o in ORGS]
    create_user(db, email="admin@example.org", name="Ada Admin", role="admin", organisation_id=None,
                password=DEMO_PASSWORD, locale="en")
    staff = create_user(db, email="staff@example.org", name="Stefan Staff", role="staff", organisation_id=None,
                        password=DEMO_PASSWORD, locale="de")
    create_user(db, email="staff2@example.org", name="Sofia Second", role="staff", organisation_id=None,
                password=DEMO_PASSWORD, locale="en")
    create_user(db, email="partner.a@example.org", name="Nino Partner", role="partner",
                organisation_id=orgs[0].id, password=DEMO_PASSWORD, locale="ru")
    create_user(db, email="partner.b@example.org", name="Awa Partner", role="partner",
                organisation_id=orgs[1].id, password=DEMO_PASSWORD, locale="fr")
    for org_i, country, measure, status, returned, lines in CASES:
        case = cases.create_case(db, staff, {"country": country, "organisation_id": orgs[org_i].id,
                                             "return_date": returned, "measure_type": measure, "notes": ""})
        for category, description, eur in lines:
            cases.add_line(db, staff, case, {"category": category, "description": description,
                                             "planned_cents": eur * 100})
        path = [CaseStatus.ACTIVE, CaseStatus.MONITORING, CaseStatus.CLOSED]
        for step in path[: path.index(status) + 1] if status != "planned" else []:
            cases.change_status(db, staff, case, step)
    cases.save_rule(db, staff, "TR", True, "Another federal return programme")
    _demo_receipts(db)
    return "demo data loaded"


# Receipts in three currencies, with the InforEuro-style monthly rates they need: what the review desk,
# the dashboard and the Belegliste show in the demo. EUR figures: 7080 GEL / 2.95 = 2400.00;
# 1160 GEL / 2.90 = 400.00; 983936 XOF / 655.957 = 1500.00; 229585 XOF / 655.957 = 350.00; 3100 EUR.
RATES = [("GEL", date(2024, 3, 1), "2.95"), ("GEL", date(2024, 4, 1), "2.90"),
         ("XOF", date(2024, 5, 1), "655.957"), ("XOF", date(2024, 6, 1), "655.957")]
RECEIPTS = [  # (case index, line index, uploader, supplier, invoice no., date, amount, currency, colour, approvers)
    (0, 0, "partner.a@example.org", "Tbilisi Tools LLC", "TT-1043", date(2024, 3, 20), "7080.00", "GEL", "navy",
     ("staff@example.org", "staff2@example.org")),
    (0, 1, "partner.a@example.org", "Fabric House", "FH-778", date(2024, 4, 2), "1160.00", "GEL", "teal", ()),
    (2, 1, "partner.a@example.org", "Kaffee Technik GmbH", "KT-2024-88", date(2024, 2, 10), "3100.00", "EUR",
     "maroon", ("staff@example.org", "staff2@example.org")),
    (3, 0, "partner.b@example.org", "Agri Sénégal SARL", "AS-2024-115", date(2024, 5, 14), "983936", "XOF",
     "olive", ("staff2@example.org", "staff@example.org")),
    (3, 1, "partner.b@example.org", "Graines du Sahel", "GS-552", date(2024, 6, 3), "229585", "XOF", "purple",
     ("staff@example.org",)),
    # No GEL rate for September 2024 yet: saved and marked "rate missing" for staff.
    (1, 0, "partner.a@example.org", "Weld Academy", "WA-19", date(2024, 9, 15), "5310.00", "GEL", "orange", ()),
]


def _demo_scan(colour: str) -> bytes:
    """A small, distinct PNG standing in for a photographed receipt."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 420), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 300, 80), fill=colour)
    for y in range(110, 380, 30):
        draw.line((30, y, 290, y), fill="grey", width=3)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


INFOREURO = ("https://commission.europa.eu/funding-tenders/procedures-guidelines-tenders/"
             "information-contractors-and-beneficiaries/exchange-rate-inforeuro_en")


def _demo_receipts(db: Session) -> None:
    from portal.receipts import decisions, money
    from portal.receipts import rates as receipt_rates
    from portal.receipts import services as receipts
    from portal.storage import get_storage

    users = {u.email: u for u in db.exec(select(User))}
    staff = users["staff@example.org"]
    for currency, month, rate in RATES:
        receipt_rates.save_rate(db, staff, currency, month, Decimal(rate), f"InforEuro {month:%Y-%m}", INFOREURO)
    all_cases = list(db.exec(select(Case).order_by(Case.id)))
    storage = get_storage()
    storage.ensure_ready()
    for case_i, line_i, uploader, supplier, number, day, amount, currency, colour, approvers in RECEIPTS:
        case = all_cases[case_i]
        line = cases.budget_lines(db, case)[line_i]
        data = {"budget_line_id": line.id, "supplier": supplier, "invoice_number": number, "invoice_date": day,
                "amount_minor": money.to_minor(Decimal(amount), currency), "currency": currency,
                "description": line.description, "translation": "", "paid_directly_confirmed": True}
        upload = receipts.Upload(f"{number}.png", io.BytesIO(_demo_scan(colour)))
        files = receipts.clean_uploads([("files", "receipt", upload)])
        outcome = receipts.create_receipt(db, storage, users[uploader], case, data, files, receipts.new_nonce(),
                                          confirm_duplicate=False)
        for email in approvers:
            receipt = outcome.receipt
            db.refresh(receipt)
            decisions.decide(db, users[email], receipt, decisions.APPROVE, "", receipt.version)
