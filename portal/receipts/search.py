"""Receipt search: every word in supplier, invoice number, description or translation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Integer
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
    """Receipts whose supplier, invoice number, description or translation hold every word searched.

    PostgreSQL: the generated tsvector column `search_vector` (GIN index, `simple` configuration);
    SQLite: the FTS5 table `receipts_fts`, kept in step by triggers (migration 0015_desk)."""
    words = search_words(text)
    if not words:
        return None
    if dialect == "postgresql":
        return sa_text("receipts.search_vector @@ plainto_tsquery('simple'::regconfig, :search_words)").bindparams(
            search_words=" ".join(words))
    match = " ".join('"' + w + '"' for w in words)  # each word a phrase: no FTS5 operators from the user
    return Receipt.id.in_(sa_text("SELECT rowid FROM receipts_fts WHERE receipts_fts MATCH :search_match")
                          .bindparams(search_match=match).columns(sa_column("rowid", Integer)))


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
