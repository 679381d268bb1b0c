"""What a receipt is checked for when it is saved: its flags (rate, period, budget) and duplicates."""

from __future__ import annotations

import logging
from datetime import date
from functools import cache

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import bindparam
from sqlmodel import Session, func, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import Case
from portal.receipts.budget import over_budget
from portal.receipts.errors import ReceiptError
from portal.receipts.models import (
    Receipt,
    ReceiptFile,
    ReceiptStatus,
)
from portal.receipts.rates import apply_rate
from portal.scanning.models import ScanStatus
from portal.uploads.files import CleanFile

log = logging.getLogger(__name__)


def outside_period(day: date) -> bool:
    cfg = current_app.config
    return not (cfg["PROJECT_START"] <= day <= cfg["PROJECT_END"])


def set_flags(db: Session, receipt: Receipt) -> None:
    apply_rate(db, receipt)
    receipt.outside_period = outside_period(receipt.invoice_date)
    receipt.over_budget = over_budget(db, receipt)


def warnings_for(receipt: Receipt) -> list[str]:
    """What the person who submitted should know right away."""
    out = []
    if receipt.over_budget:
        out.append(_("The receipts of this budget line are now above its planned amount. The reviewer will "
                     "see this."))
    if receipt.outside_period:
        out.append(_("The invoice date is outside the project period. The reviewer will see this."))
    if receipt.rate_missing:
        out.append(_("There is no exchange rate for %(currency)s in this month yet: the EUR amount will be "
                     "added by staff.", currency=receipt.currency))
    return out


def invoice_duplicates(db: Session, supplier: str, invoice_number: str,
                       exclude_id: int | None = None) -> list[tuple[Receipt, Case]]:
    """Other receipts with the same supplier and invoice number (case-insensitive), anywhere."""
    params = {"supplier": supplier.strip().lower(), "invoice_number": invoice_number.strip().lower()}
    if exclude_id is not None:
        params["exclude_id"] = exclude_id
    return list(db.exec(_invoice_duplicates_statement(exclude_id is not None), params=params))


@cache
def _invoice_duplicates_statement(excluding: bool):
    # Built once per shape (with or without a receipt left out), the values as parameters.
    query = (select(Receipt, Case).join(Case, Case.id == Receipt.case_id)
             .where(func.lower(Receipt.supplier) == bindparam("supplier"),
                    func.lower(Receipt.invoice_number) == bindparam("invoice_number"),
                    Receipt.status != ReceiptStatus.PENDING)
             .order_by(Receipt.id))
    return query.where(Receipt.id != bindparam("exclude_id")) if excluding else query


def may_see(user: User, case: Case) -> bool:
    return user.is_staff or case.organisation_id == user.organisation_id


def describe_receipt(user: User, receipt: Receipt, case: Case) -> str:
    """The receipt and its case if the user may see that case; another organisation's receipt is not
    named (its reference would tell what another organisation submits). Staff see every match on the
    receipt's page."""
    if may_see(user, case):
        return _("receipt %(ref)s of case %(case)s", ref=receipt.reference, case=case.reference)
    return _("a receipt of another organisation")


def near_warnings(user: User, near: list[tuple[Receipt, Case, list[str]]],
                  exact: list[tuple[Receipt, Case]]) -> list[str]:
    """What the person who submitted is told of the receipts this one looks like: only their own
    organisation's (another organisation's are for staff alone), and not those they just confirmed."""
    confirmed = {r.id for r, _c in exact}
    return [_("This receipt looks like receipt %(ref)s of case %(case)s (yours). If it is the same purchase, "
              "correct this one. The reviewer will see this too.", ref=other.reference, case=case.reference)
            for other, case, _reasons in near
            if other.id not in confirmed and case.organisation_id == user.organisation_id and not user.is_staff]


def check_file_duplicates(db: Session, user: User, files: list[tuple[str, str, CleanFile]]) -> None:
    seen: dict[str, str] = {}
    for field_name, _kind, clean in files:
        for digest in {clean.sha256, clean.original_sha256}:
            if digest in seen:
                raise ReceiptError(_("%(name)s: you chose the same file twice", name=clean.filename), field_name)
            seen[digest] = field_name
    if not seen:
        return
    hit = db.exec(
        select(ReceiptFile, Receipt, Case).join(Receipt, Receipt.id == ReceiptFile.receipt_id)
        .join(Case, Case.id == Receipt.case_id)
        .where(ReceiptFile.confirmed.is_(True), ReceiptFile.scan_status != ScanStatus.INFECTED,
               ReceiptFile.sha256.in_(list(seen)) | ReceiptFile.original_sha256.in_(list(seen)))
        .limit(1)
    ).first()
    if hit:
        row, receipt, case = hit
        field_name = seen.get(row.sha256) or seen.get(row.original_sha256) or "files"
        if may_see(user, case):
            raise ReceiptError(_("This file is already in the portal: it belongs to %(where)s.",
                                 where=describe_receipt(user, receipt, case)), field_name)
        # Not named to the partner; staff find the attempt, with the receipt it matched, in the audit log.
        tried = next((c.filename for f, _k, c in files if f == field_name), "")
        audit.record(db, user, "receipt.duplicate_file_refused", receipt,
                     after={"organisation_id": user.organisation_id, "filename": tried})
        db.commit()
        raise ReceiptError(_("This file is already in the portal. If it belongs to a different purchase, "
                             "please contact Micado staff."), field_name)
