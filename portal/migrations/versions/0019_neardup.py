"""near-duplicates: matching keys on receipts, page fingerprints on receipt files, recorded matches

Revision ID: 0018_neardup
Revises: 0018_rates
Create Date: 2026-11-27 10:00:00

- receipts.supplier_norm, receipts.invoice_norm (indexed): supplier and invoice number without the ways
  of typing them (portal/receipts/keys.py), filled here for the existing rows. Added with plain
  ADD COLUMN on SQLite too (no batch copy of `receipts`), so the FTS5 triggers of 0015_desk stay.
- receipt_files.phash: the first page's 64-bit fingerprint; filled by the job for new files and by
  `flask --app portal receipts fingerprints` for existing ones (nothing is enqueued from here).
- receipt_matches: pairs of receipts that look like one purchase, and why. The existing rows' matches by
  their typed fields are recorded here.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018_neardup'
down_revision = '0018_rates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("receipts", sa.Column("supplier_norm", sa.String(length=200), nullable=False, server_default=""))
    op.add_column("receipts", sa.Column("invoice_norm", sa.String(length=100), nullable=False, server_default=""))
    op.add_column("receipt_files", sa.Column("phash", sa.BigInteger(), nullable=True))
    op.create_table(
        "receipt_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), sa.ForeignKey("receipts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("other_id", sa.Integer(), sa.ForeignKey("receipts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("receipt_id", "other_id", "reason", name="uq_receipt_matches"),
    )
    op.create_index("ix_receipt_matches_receipt_id", "receipt_matches", ["receipt_id"])
    op.create_index("ix_receipt_matches_other_id", "receipt_matches", ["other_id"])
    _backfill(op.get_bind())
    op.create_index("ix_receipts_supplier_norm", "receipts", ["supplier_norm"])
    op.create_index("ix_receipts_invoice_norm", "receipts", ["invoice_norm"])


def _backfill(conn) -> None:
    """The keys of every receipt, then the pairs its typed fields make (each pair once, the later first)."""
    from datetime import date

    from portal.clock import utcnow
    from portal.receipts.keys import invoice_key, supplier_key
    from portal.receipts.neardup import Facts, field_reasons

    receipts = sa.table("receipts", sa.column("id", sa.Integer), sa.column("supplier", sa.String),
                        sa.column("invoice_number", sa.String), sa.column("supplier_norm", sa.String),
                        sa.column("invoice_norm", sa.String), sa.column("amount_minor", sa.BigInteger),
                        sa.column("currency", sa.String), sa.column("invoice_date", sa.Date),
                        sa.column("eur_cents", sa.BigInteger), sa.column("status", sa.String))
    matches = sa.table("receipt_matches", sa.column("receipt_id", sa.Integer), sa.column("other_id", sa.Integer),
                       sa.column("reason", sa.String),
                       sa.column("created_at", sqlmodel.sql.sqltypes.UTCDateTime()))
    rows = conn.execute(sa.select(receipts.c.id, receipts.c.supplier, receipts.c.invoice_number,
                                  receipts.c.amount_minor, receipts.c.currency, receipts.c.invoice_date,
                                  receipts.c.eur_cents, receipts.c.status).order_by(receipts.c.id)).all()
    by_invoice: dict[str, list] = {}
    by_supplier: dict[tuple, list] = {}
    found = []
    for rid, supplier, number, amount, currency, day, eur, status in rows:
        skey, ikey = supplier_key(supplier), invoice_key(number)
        conn.execute(receipts.update().where(receipts.c.id == rid).values(supplier_norm=skey, invoice_norm=ikey))
        if status == "pending":
            continue
        if isinstance(day, str):  # SQLite without the column's type
            day = date.fromisoformat(day)
        me = (rid, Facts(skey, ikey, amount, currency, day, eur))
        candidates = {o[0]: o for o in by_invoice.get(ikey, []) if ikey}
        candidates.update({o[0]: o for o in by_supplier.get((skey, currency, amount), [])})
        for other_id, other in candidates.values():
            for reason in field_reasons(me[1], other):
                found.append({"receipt_id": rid, "other_id": other_id, "reason": reason,
                              "created_at": utcnow()})
        if ikey:
            by_invoice.setdefault(ikey, []).append(me)
        by_supplier.setdefault((skey, currency, amount), []).append(me)
    if found:
        conn.execute(matches.insert(), found)


def downgrade() -> None:
    op.drop_index("ix_receipt_matches_other_id", table_name="receipt_matches")
    op.drop_index("ix_receipt_matches_receipt_id", table_name="receipt_matches")
    op.drop_table("receipt_matches")
    op.drop_index("ix_receipts_invoice_norm", table_name="receipts")
    op.drop_index("ix_receipts_supplier_norm", table_name="receipts")
    # Plain DROP COLUMN on both (SQLite ≥ 3.35 drops in place: no copy of `receipts`, the FTS5 triggers stay).
    for table, column in (("receipt_files", "phash"), ("receipts", "invoice_norm"), ("receipts", "supplier_norm")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
