"""A budget line's figures: what its receipts submitted (not rejected) and approved add up to."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, func, select

from portal.cases.models import BudgetLine, Case
from portal.receipts.models import (
    COUNTED,
    Receipt,
    ReceiptStatus,
)

log = logging.getLogger(__name__)


def _line_used(db: Session, line_id: int, exclude_id: int | None) -> int:
    query = select(func.coalesce(func.sum(Receipt.eur_cents), 0)).where(
        Receipt.budget_line_id == line_id, Receipt.status.in_(COUNTED))
    if exclude_id is not None:
        query = query.where(Receipt.id != exclude_id)
    return int(db.exec(query).one())


def over_budget(db: Session, receipt: Receipt) -> bool:
    line = db.get(BudgetLine, receipt.budget_line_id) if receipt.budget_line_id else None
    if line is None or receipt.eur_cents is None:
        return False
    return _line_used(db, line.id, receipt.id) + receipt.eur_cents > line.planned_cents


@dataclass
class LineFigures:
    submitted_cents: int = 0
    approved_cents: int = 0
    without_rate: int = 0


def figures_of(receipts: Iterable[Receipt]) -> dict[int | None, LineFigures]:
    """budget_figures, added up from a case's receipts already loaded (the case page has them all)."""
    figures: dict[int | None, LineFigures] = {}
    for receipt in receipts:
        if receipt.status not in COUNTED:
            continue
        fig = figures.setdefault(receipt.budget_line_id, LineFigures())
        fig.submitted_cents += receipt.eur_cents or 0
        fig.without_rate += receipt.eur_cents is None
        if receipt.status == ReceiptStatus.APPROVED:
            fig.approved_cents += receipt.eur_cents or 0
    return figures


def budget_figures(db: Session, case: Case) -> dict[int | None, LineFigures]:
    """Per budget line: EUR submitted (not rejected) and approved; receipts still without a rate counted."""
    figures: dict[int | None, LineFigures] = {}
    rows = db.exec(select(Receipt.budget_line_id, Receipt.status, func.coalesce(func.sum(Receipt.eur_cents), 0),
                          func.count(Receipt.id) - func.count(Receipt.eur_cents))
                   .where(Receipt.case_id == case.id, Receipt.status.in_(COUNTED))
                   .group_by(Receipt.budget_line_id, Receipt.status))
    for line_id, status, cents, no_rate in rows:
        fig = figures.setdefault(line_id, LineFigures())
        fig.submitted_cents += int(cents)
        fig.without_rate += int(no_rate)
        if status == ReceiptStatus.APPROVED:
            fig.approved_cents += int(cents)
    return figures


@dataclass
class LineSummary:
    """A budget line's figures beside a decision: planned, submitted (not rejected), approved, remaining."""

    planned_cents: int
    submitted_cents: int
    approved_cents: int

    @property
    def remaining_cents(self) -> int:
        return self.planned_cents - self.submitted_cents


def line_summaries(db: Session, line_ids: Iterable[int]) -> dict[int, LineSummary]:
    """The figures of several budget lines in one statement (a page of the review desk)."""
    ids = sorted({i for i in line_ids if i is not None})
    if not ids:
        return {}
    counted = Receipt.status.in_(COUNTED)
    rows = db.exec(select(BudgetLine.id, BudgetLine.planned_cents,
                          func.coalesce(func.sum(Receipt.eur_cents).filter(counted), 0),
                          func.coalesce(func.sum(Receipt.eur_cents).filter(Receipt.status == ReceiptStatus.APPROVED),
                                        0))
                   .outerjoin(Receipt, Receipt.budget_line_id == BudgetLine.id)
                   .where(BudgetLine.id.in_(ids)).group_by(BudgetLine.id, BudgetLine.planned_cents))
    return {line_id: LineSummary(int(planned), int(submitted), int(approved))
            for line_id, planned, submitted, approved in rows}
