"""Demo data for the run command and the browser tests. These accounts exist only in the demo."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from portal.auth.models import User
from portal.auth.services import create_user
from portal.cases import services as cases
from portal.cases.models import CaseStatus
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
    return "demo data loaded"
