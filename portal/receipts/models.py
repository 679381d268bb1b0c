"""Receipts (proof of in-kind purchases), their files, their history, and the monthly exchange rates.

Money is whole minor units of its currency (cents, tetri, …) in BIGINT columns; exchange rates are
whole millionths. No Decimal/Numeric in the database: amounts are exact integers on both backends.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from portal.clock import utcnow
from portal.receipts.keys import invoice_key, supplier_key
from portal.scanning.models import Scanned

RATE_SCALE = 1_000_000  # exchange rates are stored as whole millionths


class ReceiptStatus(StrEnum):
    PENDING = "pending"  # an upload intent: the files are being stored, not yet confirmed
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    CORRECTION_REQUESTED = "correction_requested"


# A partner may still change these.
EDITABLE = (ReceiptStatus.SUBMITTED, ReceiptStatus.CORRECTION_REQUESTED)
# What counts as "submitted" in the budget: everything handed in and not rejected.
COUNTED = (ReceiptStatus.SUBMITTED, ReceiptStatus.CORRECTION_REQUESTED, ReceiptStatus.APPROVED)


class FileKind(StrEnum):
    RECEIPT = "receipt"
    HANDOVER = "handover"


class RateEvidence(SQLModel, table=True):
    """A file rates were imported from (an InforEuro export, a CSV), kept as the auditors' evidence.

    One row per distinct file (by SHA-256): importing the same file again reuses it. Stored under
    `rates/<sha256>.<ext>`; never deleted (receipts are kept for years, and so is the proof of their rate)."""

    __tablename__ = "rate_evidence"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="import", max_length=16)
    original_filename: str = Field(max_length=200)  # sanitised; only ever the download name
    content_type: str = Field(max_length=100)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64, unique=True)
    key: str = Field(max_length=300, unique=True)
    uploaded_by_id: int | None = Field(default=None, foreign_key="users.id")
    uploaded_at: datetime = Field(default_factory=utcnow)


class ExchangeRate(SQLModel, table=True):
    """One accounting rate per currency per month (InforEuro style): units of the currency for 1 EUR.

    Its evidence: the imported file it came from (`evidence_id`) or, for a rate typed in, a reference to
    where it was read (`source_ref`: the InforEuro page, a document)."""

    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("currency", "month", name="uq_exchange_rates_currency_month"),)

    id: int | None = Field(default=None, primary_key=True)
    currency: str = Field(max_length=3, index=True)
    month: date  # always the first day of the month
    # How many units of `currency` one euro buys, times RATE_SCALE (InforEuro publishes it this way round).
    units_per_eur_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    source: str = Field(default="InforEuro", max_length=100)
    source_ref: str = Field(default="", max_length=500)
    evidence_id: int | None = Field(default=None, foreign_key="rate_evidence.id", index=True)
    updated_by_id: int | None = Field(default=None, foreign_key="users.id")
    updated_at: datetime = Field(default_factory=utcnow)


class Receipt(SQLModel, table=True):
    """Proof of one purchase on a case. `version` guards concurrent changes; `revision` counts submissions."""

    __tablename__ = "receipts"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    # A removed budget line leaves its receipts in place, unassigned, for staff to sort out.
    budget_line_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("budget_lines.id", ondelete="SET NULL"), index=True))
    supplier: str = Field(max_length=200)
    invoice_number: str = Field(max_length=100)
    invoice_date: date
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    eur_cents: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    rate_micro: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    rate_month: date | None = None
    rate_source: str | None = Field(default=None, max_length=100)
    description: str = Field(max_length=2000)
    translation: str = Field(default="", max_length=4000)
    paid_directly_confirmed: bool = False
    status: str = Field(default=ReceiptStatus.PENDING, max_length=24, index=True)
    duplicate_suspected: bool = False
    over_budget: bool = False
    outside_period: bool = False
    rate_missing: bool = False
    # The hidden one-time key of the form that created it: the same form sent twice makes one receipt.
    nonce: str = Field(max_length=64, unique=True)
    # Matching keys (portal/receipts/keys.py), kept in step with supplier and invoice_number by the hooks
    # below: the near-duplicate check compares these. (ix_receipts_invoice_key is 0009's lower() index.)
    supplier_norm: str = Field(default="", max_length=200, index=True)
    invoice_norm: str = Field(default="", max_length=100, index=True)
    uploaded_by_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    revision: int = 1
    version: int = 1

    @property
    def reference(self) -> str:
        return f"R-{self.id:05d}"

    def set_keys(self) -> None:
        self.supplier_norm = supplier_key(self.supplier)
        self.invoice_norm = invoice_key(self.invoice_number)


@event.listens_for(Receipt, "before_insert")
@event.listens_for(Receipt, "before_update")
def _keys_in_step(_mapper, _connection, receipt: Receipt) -> None:
    receipt.set_keys()


class ReceiptFile(Scanned, table=True):
    """A stored object of a receipt. Unconfirmed rows are upload intents the sweep may remove."""

    __tablename__ = "receipt_files"

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: int = Field(foreign_key="receipts.id", index=True)
    kind: str = Field(default=FileKind.RECEIPT, max_length=16)
    key: str = Field(max_length=300, unique=True)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64, index=True)  # of the stored (cleaned) bytes
    original_sha256: str = Field(max_length=64, index=True)  # of the bytes as uploaded
    content_type: str = Field(max_length=100)
    original_filename: str = Field(max_length=200)  # sanitised; only ever the download name
    metadata_removed: bool = True  # False for HEIC, which is stored as uploaded
    confirmed: bool = Field(default=False, index=True)
    uploaded_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # The picture's fingerprint (portal/receipts/neardup.py): a 64-bit perceptual hash of the first page,
    # as a signed BIGINT; None until the job made it (or for a file without a picture).
    phash: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ReceiptMatch(SQLModel, table=True):
    """Two receipts that look like the same purchase (portal/receipts/neardup.py): `receipt_id` is the later
    one. `reason`: "invoice" (same invoice number), "amount" (same supplier, amount and date) or "image"
    (the pictures; `distance` is the Hamming distance of their fingerprints)."""

    __tablename__ = "receipt_matches"
    __table_args__ = (UniqueConstraint("receipt_id", "other_id", "reason", name="uq_receipt_matches"),)

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: int = Field(sa_column=Column(Integer, ForeignKey("receipts.id", ondelete="CASCADE"), index=True,
                                             nullable=False))
    other_id: int = Field(sa_column=Column(Integer, ForeignKey("receipts.id", ondelete="CASCADE"), index=True,
                                           nullable=False))
    reason: str = Field(max_length=16)
    distance: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ReceiptEvent(SQLModel, table=True):
    """The receipt's history: every submission (with a snapshot of what was submitted) and every decision."""

    __tablename__ = "receipt_events"

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: int = Field(foreign_key="receipts.id", index=True)
    revision: int
    actor_id: int | None = Field(default=None, foreign_key="users.id")
    # submitted, resubmitted, approved, first_approval, rejected, correction_requested, file_added
    kind: str = Field(max_length=32)
    comment: str = Field(default="", max_length=4000)
    snapshot: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    at: datetime = Field(default_factory=utcnow, index=True)
