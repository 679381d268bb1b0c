"""Receipt search: every word in supplier, invoice number, description or translation, or in the text
read on the receipt's first file (portal/ocr)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Integer, or_
from sqlalchemy import column as sa_column
from sqlalchemy import text as sa_text
from sqlmodel import Session, select

from portal.auth.models import User
from portal.cases.models import Case
from portal.cases.services import scope
from portal.receipts.models import (
    Receipt,
    ReceiptStatus,
)

log = logging.getLogger(__name__)


SEARCH_PER_PAGE = 25
SEARCH_MAX_WORDS = 8


def search_words(text: str) -> list[str]:
    """The words of a search, at most a few, each of a sensible length."""
    return [w[:100] for w in (text or "").replace('"', " ").split()][:SEARCH_MAX_WORDS]


def search_condition(text: str, dialect: str):
    """Receipts whose supplier, invoice number, description or translation hold every word searched, or whose
    recognised text (portal/ocr: the first file read by machine) holds every word.

    PostgreSQL: the generated tsvector columns `search_vector` of receipts and receipt_texts (GIN indexes,
    `simple` configuration); SQLite: the FTS5 tables `receipts_fts` and `receipt_texts_fts`, kept in step by
    triggers (migrations 0015_desk and 0021_prefill)."""
    words = search_words(text)
    if not words:
        return None
    if dialect == "postgresql":
        query = " ".join(words)
        return or_(
            sa_text("receipts.search_vector @@ plainto_tsquery('simple'::regconfig, :search_words)").bindparams(
                search_words=query),
            Receipt.id.in_(sa_text("SELECT receipt_id FROM receipt_texts WHERE receipt_texts.search_vector @@ "
                                   "plainto_tsquery('simple'::regconfig, :text_words)")
                           .bindparams(text_words=query).columns(sa_column("receipt_id", Integer))))
    match = " ".join('"' + w + '"' for w in words)  # each word a phrase: no FTS5 operators from the user
    return or_(
        Receipt.id.in_(sa_text("SELECT rowid FROM receipts_fts WHERE receipts_fts MATCH :search_match")
                       .bindparams(search_match=match).columns(sa_column("rowid", Integer))),
        Receipt.id.in_(sa_text("SELECT receipt_id FROM receipt_texts WHERE id IN (SELECT rowid FROM "
                               "receipt_texts_fts WHERE receipt_texts_fts MATCH :text_match)")
                       .bindparams(text_match=match).columns(sa_column("receipt_id", Integer))))


@dataclass
class SearchPage:
    rows: list[tuple[Receipt, Case]]
    next_before: int | None  # the id to continue after (newest first), None on the last page


def search(db: Session, user: User, text: str, before: int | None = None) -> SearchPage:
    """Receipts the user may see (staff: all; partners: their organisation's) matching every word, newest
    first, one page after `before` (keyset by id)."""
    condition = search_condition(text, db.get_bind().dialect.name)
    if condition is None:
        return SearchPage([], None)
    query = (select(Receipt, Case).join(Case, Case.id == Receipt.case_id)
             .where(condition, Receipt.status != ReceiptStatus.PENDING, *scope(user)))
    if before is not None:
        query = query.where(Receipt.id < before)
    rows = list(db.exec(query.order_by(Receipt.id.desc()).limit(SEARCH_PER_PAGE + 1)))
    more = len(rows) > SEARCH_PER_PAGE
    rows = rows[:SEARCH_PER_PAGE]
    return SearchPage(rows, rows[-1][0].id if more else None)
