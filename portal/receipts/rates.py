"""Exchange rates: one per currency and month (InforEuro); the EUR amount of each receipt comes from the
rate of its invoice month."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from babel.numbers import is_currency
from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from portal import audit
from portal.audit import AuditEntry
from portal.auth.models import User
from portal.clock import utcnow
from portal.receipts import rate_files
from portal.receipts.budget import over_budget
from portal.receipts.errors import ReceiptError
from portal.receipts.models import (
    EDITABLE,
    RATE_SCALE,
    ExchangeRate,
    RateEvidence,
    Receipt,
)
from portal.receipts.money import first_of_month, rate_to_micro, to_eur_cents
from portal.storage import Digest, Storage, StorageError, safe_download_name

log = logging.getLogger(__name__)


def rate_for(db: Session, currency: str, day: date) -> ExchangeRate | None:
    return db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == first_of_month(day))).first()


def apply_rate(db: Session, receipt: Receipt) -> None:
    """Set the EUR amount from the rate of the invoice month; no rate → flagged, not refused."""
    month = first_of_month(receipt.invoice_date)
    if receipt.currency == "EUR":
        receipt.eur_cents = to_eur_cents(receipt.amount_minor, "EUR", RATE_SCALE)
        receipt.rate_micro, receipt.rate_month, receipt.rate_source = RATE_SCALE, month, "EUR"
        receipt.rate_missing = False
        return
    rate = rate_for(db, receipt.currency, receipt.invoice_date)
    if rate is None:
        receipt.eur_cents = receipt.rate_micro = receipt.rate_month = receipt.rate_source = None
        receipt.rate_missing = True
        return
    receipt.eur_cents = to_eur_cents(receipt.amount_minor, receipt.currency, rate.units_per_eur_micro)
    receipt.rate_micro, receipt.rate_month, receipt.rate_source = rate.units_per_eur_micro, rate.month, rate.source
    receipt.rate_missing = False


RATES_PER_PAGE = 50


def list_rates(db: Session, currency: str = "", page: int = 1,
               per_page: int | None = None) -> tuple[list[ExchangeRate], int, int]:
    """One page of the rates, newest month first: (rates, page, pages), two statements."""
    per_page = per_page or RATES_PER_PAGE
    conditions = [ExchangeRate.currency == currency] if currency else []
    total = db.exec(select(func.count()).select_from(ExchangeRate).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    query = (select(ExchangeRate).where(*conditions).order_by(ExchangeRate.month.desc(), ExchangeRate.currency)
             .offset((page - 1) * per_page).limit(per_page))
    return list(db.exec(query)), page, pages


RATE_FIELDS = ("currency", "month", "units_per_eur_micro", "source", "source_ref", "evidence_id")


def _upsert_rate(db: Session, actor: User, currency: str, month: date, micro: int, source: str,
                 source_ref: str = "", evidence_id: int | None = None) -> ExchangeRate:
    currency = currency.upper()
    if currency == "EUR" or not is_currency(currency):
        raise ReceiptError(_("Choose a currency other than the euro."), "currency")
    month = first_of_month(month)
    source = (source or "").strip()[:100] or "InforEuro"
    source_ref = (source_ref or "").strip()[:500]
    rate = db.exec(select(ExchangeRate).where(ExchangeRate.currency == currency,
                                              ExchangeRate.month == month)).first()
    if rate is not None and (rate.units_per_eur_micro, rate.source, rate.source_ref, rate.evidence_id) == (
            micro, source, source_ref, evidence_id):
        return rate  # the same rate from the same evidence again: nothing changes, nothing to record
    before = audit.snapshot(rate, RATE_FIELDS) if rate else None
    rate = rate or ExchangeRate(currency=currency, month=month, units_per_eur_micro=micro)
    rate.units_per_eur_micro, rate.source, rate.source_ref, rate.evidence_id = micro, source, source_ref, evidence_id
    rate.updated_by_id, rate.updated_at = actor.id, utcnow()
    db.add(rate)
    db.flush()
    audit.record(db, actor, "exchange_rate.saved", rate, before, audit.snapshot(rate, RATE_FIELDS))
    _reconvert(db, actor, currency, month)
    return rate


def _reconvert(db: Session, actor: User, currency: str, month: date) -> None:
    """Receipts of that currency and month that are not decided yet take the new rate."""
    next_month = (month + timedelta(days=32)).replace(day=1)
    for receipt in db.exec(select(Receipt).where(Receipt.currency == currency, Receipt.invoice_date >= month,
                                                 Receipt.invoice_date < next_month,
                                                 Receipt.status.in_(EDITABLE))):
        before = audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source", "rate_missing"))
        apply_rate(db, receipt)
        receipt.over_budget = over_budget(db, receipt)
        db.add(receipt)
        audit.record(db, actor, "receipt.reconverted", receipt, before,
                     audit.snapshot(receipt, ("eur_cents", "rate_micro", "rate_month", "rate_source",
                                              "rate_missing")))


def save_rate(db: Session, actor: User, currency: str, month: date, rate: Decimal, source: str,
              source_ref: str) -> ExchangeRate:
    """Add or replace the rate of one currency for one month, typed in with the reference to where it was
    read (the evidence of a typed rate); undecided receipts are converted again."""
    if not (source_ref or "").strip():
        raise ReceiptError(_("Enter where the rate comes from, like the InforEuro page or a document reference"),
                           "source_ref")
    saved = _upsert_rate(db, actor, currency, month, rate_to_micro(rate), source, source_ref)
    db.commit()
    return saved


# Importing a file, kept as the evidence ---------------------------------------------------------------

@dataclass(frozen=True)
class Imported:
    count: int
    evidence: RateEvidence
    kept_before: bool  # the same file (by SHA-256) had been imported already


def import_rates(db: Session, storage: Storage, actor: User, raw: bytes, filename: str,
                 month: date | None = None) -> Imported:
    """Import every rate of an InforEuro export (XLSX or CSV) or a plain CSV, all or none; the file is kept
    under `rates/<sha256>.<ext>` and each rate links to it. The same file again: the same evidence row,
    the rates upserted (nothing changes if they did not)."""
    parsed = rate_files.read(raw, filename, month)
    digest = Digest()
    digest.update(raw)
    for attempt in (1, 2):
        try:
            return _import(db, storage, actor, parsed, raw, digest, filename)
        except IntegrityError:  # the same file imported by someone else at the same moment: theirs is kept
            db.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _import(db: Session, storage: Storage, actor: User, parsed: rate_files.RateFile, raw: bytes,
            digest: Digest, filename: str) -> Imported:
    evidence = db.exec(select(RateEvidence).where(RateEvidence.sha256 == digest.sha256)).first()
    kept_before = evidence is not None
    if evidence is None:
        key = f"rates/{digest.sha256}.{parsed.kind}"
        try:
            # Stored before the row commits: a failure after this leaves an object under the same key that
            # the next import of this file reuses, never a row without its file.
            storage.put(key, io.BytesIO(raw), content_type=parsed.content_type, sha256=digest.sha256,
                        md5=digest.md5_base64)
        except StorageError:
            raise ReceiptError(_("The file could not be stored. Nothing was imported – try again."),
                               "file") from None
        evidence = RateEvidence(original_filename=safe_download_name(filename or f"rates.{parsed.kind}")[:200],
                                content_type=parsed.content_type, size=digest.size, sha256=digest.sha256, key=key,
                                uploaded_by_id=actor.id, kind="import")
        db.add(evidence)
        db.flush()
        audit.record(db, actor, "rate_evidence.stored", evidence, None,
                     audit.snapshot(evidence, ("original_filename", "size", "sha256", "key")))
    for row in parsed.rows:
        _upsert_rate(db, actor, row.currency, row.month, row.micro, row.source, "", evidence.id)
    db.commit()
    return Imported(count=len(parsed.rows), evidence=evidence, kept_before=kept_before)


def get_evidence(db: Session, evidence_id: int) -> RateEvidence | None:
    return db.get(RateEvidence, evidence_id)


def evidence_url(evidence_id: int) -> str:
    """The full address of a kept rate file's download (for the Belegliste, read far from the portal)."""
    return current_app.config["BASE_URL"].rstrip("/") + url_for("receipts.rate_evidence", evidence_id=evidence_id)


def evidence_of(db: Session, rates: Iterable[ExchangeRate]) -> dict[int, RateEvidence]:
    """The evidence rows of these rates by id, one statement."""
    ids = {r.evidence_id for r in rates if r.evidence_id}
    if not ids:
        return {}
    return {e.id: e for e in db.exec(select(RateEvidence).where(RateEvidence.id.in_(ids)))}


# The evidence of a receipt's rate -------------------------------------------------------------------

@dataclass(frozen=True)
class RateProof:
    """Where a receipt's rate came from: the file it was imported from, or the reference typed with it."""

    source_ref: str = ""
    evidence: RateEvidence | None = None

    def reference(self) -> str:
        """One line for a list: the file's name and checksum, or the typed reference."""
        if self.evidence is not None:
            return f"{self.evidence.original_filename} (#{self.evidence.id}, SHA-256 {self.evidence.sha256})"
        return self.source_ref


def proofs_for(db: Session, receipts: Iterable[Receipt]) -> dict[int, RateProof]:
    """The proof of each converted foreign-currency receipt's rate, by receipt id (few statements for any
    number). The rate row as it is now, when it still has the receipt's rate; else the rate's audit
    history, for a decided receipt whose month was given a new rate later."""
    wanted = [r for r in receipts if r.id and r.currency != "EUR" and r.rate_micro and r.rate_month]
    if not wanted:
        return {}
    pairs = {(r.currency, r.rate_month) for r in wanted}
    rates = {(x.currency, x.month): x for x in db.exec(select(ExchangeRate).where(
        ExchangeRate.currency.in_({c for c, _m in pairs}), ExchangeRate.month.in_({m for _c, m in pairs})))}
    found: dict[int, tuple[str, int | None]] = {}
    older: list[tuple[Receipt, ExchangeRate]] = []
    for receipt in wanted:
        rate = rates.get((receipt.currency, receipt.rate_month))
        if rate is None:
            continue
        if (rate.units_per_eur_micro, rate.source) == (receipt.rate_micro, receipt.rate_source):
            found[receipt.id] = (rate.source_ref, rate.evidence_id)
        else:
            older.append((receipt, rate))
    if older:
        history = list(db.exec(select(AuditEntry).where(
            AuditEntry.action == "exchange_rate.saved", AuditEntry.object_type == "ExchangeRate",
            AuditEntry.object_id.in_({str(rate.id) for _r, rate in older})).order_by(AuditEntry.id.desc())))
        for receipt, rate in older:
            for entry in history:
                after = entry.after or {}
                if entry.object_id == str(rate.id) and (after.get("units_per_eur_micro"), after.get("source")) == (
                        receipt.rate_micro, receipt.rate_source):
                    found[receipt.id] = (after.get("source_ref") or "", after.get("evidence_id"))
                    break
    evidence = {}
    ids = {e for _ref, e in found.values() if e}
    if ids:
        evidence = {e.id: e for e in db.exec(select(RateEvidence).where(RateEvidence.id.in_(ids)))}
    return {rid: RateProof(ref, evidence.get(eid) if eid else None) for rid, (ref, eid) in found.items()
            if ref or eid}
