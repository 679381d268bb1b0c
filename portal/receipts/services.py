"""Receipts: loading (scoped), upload (intent → store → confirm) and changes by the partner. The rest of the
feature sits beside it: money, rates, checks (flags, duplicates), budget, decisions, previews, search, sweep.

Every query that takes an ID from a request goes through get_receipt_for()/get_file_for(), which scope
by the case's organisation exactly like cases.services.get_case_for().
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import BinaryIO, NamedTuple

from flask import abort
from flask_babel import gettext as _
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from portal import audit
from portal.auth.models import User
from portal.cases.models import BudgetLine, Case
from portal.cases.services import scope_by_parameter, scope_parameters
from portal.clock import utcnow
from portal.ocr import services as ocr
from portal.receipts import neardup
from portal.receipts.budget import figures_of, over_budget
from portal.receipts.checks import check_file_duplicates, invoice_duplicates, near_warnings, set_flags, warnings_for
from portal.receipts.errors import Conflict, DuplicateInvoice, InFlight, ReceiptError, UploadFailed
from portal.receipts.models import (
    EDITABLE,
    FileKind,
    Receipt,
    ReceiptEvent,
    ReceiptFile,
    ReceiptStatus,
)
from portal.scanning import services as scanning
from portal.storage import Storage, StorageError, new_key
from portal.uploads import services as uploads
from portal.uploads.files import MSG_FAILED, CleanFile, FileProblem, clean_upload

log = logging.getLogger(__name__)

RECEIPT_FIELDS = ("budget_line_id", "supplier", "invoice_number", "invoice_date", "amount_minor", "currency",
                  "eur_cents", "rate_micro", "rate_month", "rate_source", "description", "translation",
                  "paid_directly_confirmed", "status", "duplicate_suspected", "over_budget", "outside_period",
                  "rate_missing")


@dataclass
class Upload:
    """A file as the browser sent it; views build these so services never see the request."""

    filename: str
    stream: BinaryIO


@dataclass
class Outcome:
    receipt: Receipt
    replayed: bool = False  # the same form was sent before: nothing new was saved
    warnings: list[str] = field(default_factory=list)
    files: list[ReceiptFile] = field(default_factory=list)  # with their malware scan status


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


# Loading, scoped ---------------------------------------------------------------------------------

def get_receipt_for(db: Session, user: User, receipt_id: int) -> Receipt:
    """The receipt if the user may see its case, else 404. Upload intents do not exist for anyone."""
    return get_receipt_with_case_for(db, user, receipt_id, with_case=False)[0]


def get_receipt_with_case_for(db: Session, user: User, receipt_id: int,
                              with_case: bool = True) -> tuple[Receipt, Case | None, BudgetLine | None]:
    """get_receipt_for() with the receipt's case and budget line (None without one), in the same statement."""
    row = db.exec(receipt_statement(with_case, not user.is_staff), params=receipt_params(user, receipt_id)).first()
    if row is None:
        abort(404)
    return tuple(row) if with_case else (row, None, None)


@cache
def receipt_statement(with_case: bool = True, scoped: bool = True):
    """The statement of get_receipt_with_case_for(), built once per shape, with the parameters of
    receipt_params(): a partner's (`scoped`) is limited to their organisation's cases. A caller may add the
    columns of rows a receipt has at most one of."""
    columns = (Receipt, Case, BudgetLine) if with_case else (Receipt,)
    query = select(*columns).join(Case, Case.id == Receipt.case_id)
    if with_case:
        query = query.outerjoin(BudgetLine, BudgetLine.id == Receipt.budget_line_id)
    return query.where(Receipt.id == bindparam("receipt_id"), Receipt.status != ReceiptStatus.PENDING,
                       *(scope_by_parameter() if scoped else ()))


def receipt_params(user: User, receipt_id: int) -> dict:
    return {"receipt_id": receipt_id, **scope_parameters(user)}


def get_file_for(db: Session, user: User, receipt_id: int, file_id: int) -> tuple[Receipt, ReceiptFile]:
    receipt = get_receipt_for(db, user, receipt_id)
    row = db.exec(select(ReceiptFile).where(ReceiptFile.id == file_id, ReceiptFile.receipt_id == receipt.id,
                                            ReceiptFile.confirmed.is_(True))).first()
    if row is None:
        abort(404)
    return receipt, row


def case_of(db: Session, receipt: Receipt) -> Case:
    return db.get(Case, receipt.case_id)


def receipts_of_case(db: Session, case: Case) -> list[Receipt]:
    return list(db.exec(select(Receipt).where(Receipt.case_id == case.id, Receipt.status != ReceiptStatus.PENDING)
                        .order_by(Receipt.created_at.desc(), Receipt.id.desc())))


TIMELINE_EVENTS = ("submitted", "resubmitted", "approved", "first_approval", "rejected", "correction_requested")


class CaseReceipt(NamedTuple):
    """A receipt as the case page lists it (read-only, no ORM object)."""

    id: int
    supplier: str
    invoice_date: date
    budget_line_id: int | None
    amount_minor: int | None
    currency: str
    eur_cents: int | None
    status: str
    duplicate_suspected: bool
    over_budget: bool
    outside_period: bool
    rate_missing: bool
    reference = Receipt.reference  # the same "R-00042" as a Receipt's


class CaseReceiptEvent(NamedTuple):
    kind: str
    at: datetime
    receipt: CaseReceipt


@cache
def _case_receipts_statement():
    return (select(Receipt.id, Receipt.supplier, Receipt.invoice_date, Receipt.budget_line_id, Receipt.amount_minor,
                   Receipt.currency, Receipt.eur_cents, Receipt.status, Receipt.duplicate_suspected,
                   Receipt.over_budget, Receipt.outside_period, Receipt.rate_missing,
                   ReceiptEvent.kind, ReceiptEvent.at)
            .outerjoin(ReceiptEvent, (ReceiptEvent.receipt_id == Receipt.id) & ReceiptEvent.kind.in_(TIMELINE_EVENTS))
            .where(Receipt.case_id == bindparam("case_id"), Receipt.status != ReceiptStatus.PENDING)
            .order_by(Receipt.created_at.desc(), Receipt.id.desc(), ReceiptEvent.id))


def receipts_of_case_with_events(db: Session, case) -> tuple[list[CaseReceipt], list[CaseReceiptEvent]]:
    """The case's receipts (as receipts_of_case() orders them) and their history's submissions and decisions,
    in one statement of Core rows (`case` is a Case or a row with its id)."""
    receipts: dict[int, CaseReceipt] = {}
    events = []
    # All rows at once (fetchall, not a fetch per row), read by position (a Row's attributes cost more).
    for row in db.connection().execute(_case_receipts_statement(), {"case_id": case.id}).all():
        receipt = receipts.get(row[0])
        if receipt is None:
            receipt = receipts[row[0]] = CaseReceipt(*row[:12])
        if row[12] is not None:
            events.append(CaseReceiptEvent(row[12], row[13], receipt))
    return list(receipts.values()), events


# The receipt page's statements, built once (with the receipt's id as a parameter), not on every request.
@cache
def _files_statement():
    return (select(ReceiptFile).where(ReceiptFile.receipt_id == bindparam("receipt_id"),
                                      ReceiptFile.confirmed.is_(True)).order_by(ReceiptFile.id))


@cache
def _history_statement():
    return (select(ReceiptEvent, User.name).outerjoin(User, User.id == ReceiptEvent.actor_id)
            .where(ReceiptEvent.receipt_id == bindparam("receipt_id")).order_by(ReceiptEvent.at, ReceiptEvent.id))


def files_of(db: Session, receipt: Receipt) -> list[ReceiptFile]:
    return list(db.exec(_files_statement(), params={"receipt_id": receipt.id}))


def history(db: Session, receipt: Receipt) -> list[tuple[ReceiptEvent, str]]:
    """Every submission and decision, oldest first, with the actor's name."""
    rows = db.exec(_history_statement(), params={"receipt_id": receipt.id})
    return [(event, name or "") for event, name in rows]


def can_edit(user: User, receipt: Receipt) -> bool:
    """Partners (and whoever uploaded it) may change a receipt until it is decided; staff review it."""
    return receipt.status in EDITABLE and (not user.is_staff or user.id == receipt.uploaded_by_id)


def can_add_handover(receipt: Receipt) -> bool:
    # A handover proof does not change what was approved, so it may follow an approval.
    return receipt.status != ReceiptStatus.REJECTED


# Files: clean, intent, store, confirm --------------------------------------------------------------

def clean_uploads(uploads: Iterable[tuple[str, str, Upload]]) -> list[tuple[str, str, CleanFile]]:
    """(field, kind, upload) → (field, kind, cleaned file); ReceiptError naming the field otherwise."""
    uploads = list(uploads)
    out = []
    for field_name, kind, upload in uploads:
        try:
            clean = clean_upload(upload.filename, upload.stream)
        except FileProblem as exc:
            several = sum(1 for f, _k, _u in uploads if f == field_name) > 1
            message = _("%(name)s: %(problem)s", name=upload.filename, problem=str(exc)) if several else str(exc)
            raise ReceiptError(message, field_name) from None
        out.append((field_name, kind, clean))
    return out


def _adopted(clean: CleanFile) -> bool:
    """A completed resumable upload: checked and stored already, under its own key."""
    return bool(getattr(clean, "upload_id", 0))


def _intent_rows(receipt: Receipt, actor: User, case_id: int,
                 files: list[tuple[str, str, CleanFile]]) -> list[tuple[ReceiptFile, CleanFile]]:
    return [(ReceiptFile(receipt_id=receipt.id, kind=kind,
                         key=getattr(clean, "key", "") or new_key(f"receipts/{case_id}"), size=clean.size,
                         sha256=clean.sha256, original_sha256=clean.original_sha256,
                         content_type=clean.content_type, original_filename=clean.filename,
                         metadata_removed=clean.metadata_removed, confirmed=False, uploaded_by_id=actor.id,
                         scan_status=scanning.initial_status()),
             clean) for _field, kind, clean in files]


def _store(storage: Storage, pairs: list[tuple[ReceiptFile, CleanFile]]) -> None:
    for row, clean in pairs:
        if _adopted(clean):
            continue
        stored = storage.put(row.key, clean.data, content_type=row.content_type, sha256=row.sha256,
                             md5=clean.md5 or None)
        if (stored.size, stored.sha256) != (row.size, row.sha256):
            raise StorageError(f"{row.key}: stored {stored.sha256}, expected {row.sha256}")


def _abandon(db: Session, storage: Storage, keys: list[str], receipt_id: int | None,
             file_ids: list[int], upload_ids: list[int] | None = None) -> None:
    """Best effort after a failure: remove what was stored and the intent rows. What stays, the sweep takes.
    Claimed uploads keep their objects and can be used again (`keys` never names theirs)."""
    db.rollback()
    uploads.release(db, upload_ids or [])
    for key in keys:
        try:
            storage.delete(key)
        except StorageError as exc:
            log.warning("could not remove %s after a failed upload (the sweep will): %s", key, exc)
    try:
        for file_id in file_ids:
            row = db.get(ReceiptFile, file_id)
            if row is not None:
                db.delete(row)
        if receipt_id is not None:
            db.flush()
            receipt = db.get(Receipt, receipt_id)
            if receipt is not None and receipt.status == ReceiptStatus.PENDING:
                db.delete(receipt)
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("could not remove upload intents %s/%s (the sweep will): %s", receipt_id, file_ids, exc)


def _own_keys(pairs) -> list[str]:
    """Keys this request stores itself (not those of claimed uploads, which stay theirs on failure)."""
    return [row.key for row, clean in pairs if not _adopted(clean)]


def _upload_ids(pairs) -> list[int]:
    return [clean.upload_id for _row, clean in pairs if _adopted(clean)]


def _claim_uploads(db: Session, pairs, receipt_id: int) -> None:
    """Claim the form's completed uploads in the receipt's transaction; a lost race saves nothing."""
    ids = _upload_ids(pairs)
    if ids and not uploads.claim(db, ids, receipt_id=receipt_id):
        db.rollback()
        raise ReceiptError(_("An uploaded file is no longer available (it was removed, used already or kept "
                             "for more than 24 hours). Choose it again."), "files")


def _store_or_abandon(db: Session, storage: Storage, pairs, receipt_id: int | None) -> None:
    try:
        _store(storage, pairs)
    except StorageError as exc:
        log.warning("upload failed: %s", exc)
        _abandon(db, storage, _own_keys(pairs), receipt_id, [row.id for row, _c in pairs], _upload_ids(pairs))
        raise UploadFailed(str(MSG_FAILED), "files") from None


def _snapshot(receipt: Receipt) -> dict:
    return audit.snapshot(receipt, RECEIPT_FIELDS)


def _replay(db: Session, case: Case, nonce: str) -> Outcome | None:
    """The receipt this form already made, if it was sent before; InFlight while that is still going on."""
    existing = db.exec(select(Receipt).where(Receipt.nonce == nonce)).first()
    if existing is None:
        return None
    if existing.status != ReceiptStatus.PENDING and existing.case_id == case.id:
        return Outcome(existing, replayed=True)
    raise InFlight(_("This form is already being sent. Wait a moment, then open the case to see the receipt."))


def create_receipt(db: Session, storage: Storage, actor: User, case: Case, data: dict,
                   files: list[tuple[str, str, CleanFile]], nonce: str, confirm_duplicate: bool) -> Outcome:
    """Save a new receipt with its files: intent row, objects stored with checksums, then confirmed."""
    replay = _replay(db, case, nonce)
    if replay is not None:
        return replay
    if not any(kind == FileKind.RECEIPT for _f, kind, _c in files):
        raise ReceiptError(_("Select at least one file of the receipt"), "files")
    line = db.exec(select(BudgetLine).where(BudgetLine.id == data["budget_line_id"],
                                            BudgetLine.case_id == case.id)).first()
    if line is None:
        raise ReceiptError(_("Choose the budget line this purchase belongs to."), "budget_line_id")
    check_file_duplicates(db, actor, files)
    matches = invoice_duplicates(db, data["supplier"], data["invoice_number"])
    if matches and not confirm_duplicate:
        raise DuplicateInvoice(matches)

    receipt = Receipt(case_id=case.id, uploaded_by_id=actor.id, nonce=nonce, status=ReceiptStatus.PENDING,
                      duplicate_suspected=bool(matches), **data)
    set_flags(db, receipt)
    db.add(receipt)
    try:
        db.flush()
    except IntegrityError:  # the same form, sent twice at the same moment
        db.rollback()
        replay = _replay(db, case, nonce)
        if replay is None:
            raise
        return replay
    pairs = _intent_rows(receipt, actor, case.id, files)
    db.add_all([row for row, _c in pairs])
    _claim_uploads(db, pairs, receipt.id)
    db.commit()  # the intent: from here on, the sweep knows about every object we store

    _store_or_abandon(db, storage, pairs, receipt.id)
    # Read before confirming: after a failed commit the objects are expired, and loading them again
    # would ask the database that just failed.
    receipt_id, keys, row_ids = receipt.id, _own_keys(pairs), [row.id for row, _c in pairs]
    upload_ids = _upload_ids(pairs)
    try:
        near = _confirm_new(db, actor, receipt, [row for row, _c in pairs])
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("receipt %s stored but not confirmed: %s", receipt_id, exc)
        _abandon(db, storage, keys, receipt_id, row_ids, upload_ids)
        raise UploadFailed(str(MSG_FAILED), "files") from None
    # Saved and acknowledged; an infected file is quarantined, the rest of the receipt stays.
    rows = scanning.scan_new(db, storage, [row for row, _c in pairs], actor)
    ocr.queue(receipt_id)  # text recognition, after the scan (portal/ocr)
    return Outcome(receipt, warnings=warnings_for(receipt) + near_warnings(actor, near, matches), files=rows)


def _confirm_new(db: Session, actor: User, receipt: Receipt, rows: list[ReceiptFile]) -> list:
    """Submit the receipt and confirm its files, with the receipts it looks like recorded (returned)."""
    receipt.status = ReceiptStatus.SUBMITTED
    receipt.over_budget = over_budget(db, receipt)  # other receipts may have come in meanwhile
    receipt.updated_at = utcnow()
    for row in rows:
        row.confirmed = True
        db.add(row)
    db.add(receipt)
    after = _snapshot(receipt) | {"files": [row.key for row in rows]}
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="submitted",
                        snapshot=after))
    audit.record(db, actor, "receipt.submitted", receipt, after=after)
    near = neardup.record_field_matches(db, receipt)
    db.commit()
    return near


def add_files(db: Session, storage: Storage, actor: User, receipt: Receipt, kind: str,
              files: list[tuple[str, str, CleanFile]]) -> list[ReceiptFile]:
    """Attach more files (a handover proof, or a corrected receipt scan) with the same intent flow.

    Plain files take `kind` (the form's choice); completed uploads bring their own (their purpose)."""
    files = [(f, k if _adopted(c) else kind, c) for f, k, c in files]
    kinds = sorted({k for _f, k, _c in files}) or [kind]
    if FileKind.RECEIPT in kinds and not can_edit(actor, receipt):
        raise ReceiptError(_("Files of the receipt can only be added while it waits for review or "
                             "correction."), "files")
    if FileKind.HANDOVER in kinds and not can_add_handover(receipt):
        raise ReceiptError(_("This receipt was rejected: no files can be added."), "files")
    if not files:
        raise ReceiptError(_("Select a file"), "files")
    kind = ",".join(kinds)
    check_file_duplicates(db, actor, files)
    pairs = _intent_rows(receipt, actor, receipt.case_id, files)
    db.add_all([row for row, _c in pairs])
    _claim_uploads(db, pairs, receipt.id)
    db.commit()
    _store_or_abandon(db, storage, pairs, None)
    rows = [row for row, _c in pairs]
    receipt_id, keys, row_ids = receipt.id, _own_keys(pairs), [row.id for row in rows]  # see create_receipt
    upload_ids = _upload_ids(pairs)
    try:
        for row in rows:
            row.confirmed = True
            db.add(row)
        names = [row.original_filename for row in rows]
        db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="file_added",
                            snapshot={"kind": kind, "files": names}))
        audit.record(db, actor, "receipt.file_added", receipt,
                     after={"kind": kind, "files": [row.key for row in rows], "names": names})
        db.commit()
    except SQLAlchemyError as exc:
        db.rollback()
        log.warning("files of receipt %s stored but not confirmed: %s", receipt_id, exc)
        _abandon(db, storage, keys, None, row_ids, upload_ids)
        raise UploadFailed(str(MSG_FAILED), "files") from None
    return scanning.scan_new(db, storage, rows, actor)


# Changing a receipt -------------------------------------------------------------------------------

def claim(db: Session, receipt: Receipt, expected_version: int) -> None:
    """Move the version on if nobody else did since the form was loaded; Conflict otherwise.

    One conditional UPDATE: of two requests holding the same version, exactly one matches a row.
    """
    if receipt.version != expected_version:
        raise Conflict(_("Someone else changed this receipt while you were looking at it. Its current "
                         "state is shown below."))
    result = db.exec(update(Receipt).where(Receipt.id == receipt.id, Receipt.version == expected_version)
                     .values(version=expected_version + 1).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.rollback()
        db.refresh(receipt)
        raise Conflict(_("Someone else changed this receipt while you were looking at it. Its current "
                         "state is shown below."))
    receipt.version = expected_version + 1


def update_receipt(db: Session, actor: User, receipt: Receipt, data: dict, expected_version: int,
                   confirm_duplicate: bool) -> Outcome:
    """The partner corrects a receipt: a new revision, submitted again; the old one stays in the history."""
    if receipt.status == ReceiptStatus.APPROVED:
        raise ReceiptError(_("This receipt is approved and locked."))
    if not can_edit(actor, receipt):
        raise ReceiptError(_("This receipt cannot be changed any more."))
    line = db.exec(select(BudgetLine).where(BudgetLine.id == data["budget_line_id"],
                                            BudgetLine.case_id == receipt.case_id)).first()
    if line is None:
        raise ReceiptError(_("Choose the budget line this purchase belongs to."), "budget_line_id")
    matches = invoice_duplicates(db, data["supplier"], data["invoice_number"], exclude_id=receipt.id)
    if matches and not confirm_duplicate:
        raise DuplicateInvoice(matches)
    claim(db, receipt, expected_version)
    before = _snapshot(receipt)
    for key, value in data.items():
        setattr(receipt, key, value)
    receipt.duplicate_suspected = bool(matches)
    receipt.status = ReceiptStatus.SUBMITTED
    receipt.revision += 1
    receipt.updated_at = utcnow()
    set_flags(db, receipt)
    db.add(receipt)
    after = _snapshot(receipt)
    db.add(ReceiptEvent(receipt_id=receipt.id, revision=receipt.revision, actor_id=actor.id, kind="resubmitted",
                        snapshot=after))
    audit.record(db, actor, "receipt.resubmitted", receipt, before, after)
    near = neardup.record_field_matches(db, receipt)
    db.commit()
    return Outcome(receipt, warnings=warnings_for(receipt) + near_warnings(actor, near, matches))


def case_part(db: Session, case, lines: list, with_events: bool = False) -> dict:
    """What the case page needs for its receipts section (and its budget's submitted/approved columns,
    added up from the same receipts); `with_events` adds their history for the timeline, read with them."""
    context = {}
    if with_events:
        receipts, context["receipt_events"] = receipts_of_case_with_events(db, case)
    else:
        receipts = receipts_of_case(db, case)
    return {"receipts": receipts, "receipt_line_names": {line.id: line.description for line in lines},
            "receipt_figures": figures_of(receipts), **context}
