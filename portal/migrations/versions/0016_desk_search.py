"""receipt search: PostgreSQL full-text (generated tsvector, GIN) and SQLite FTS5 kept by triggers

Revision ID: 0015_desk
Revises: 0012_queue
Create Date: 2026-11-26 14:40:00

Staff search the review queue and all receipts, partners their organisation's receipts, by supplier,
invoice number, description and translation (portal.receipts.search.search_condition):
- PostgreSQL: a stored generated column `search_vector` (`simple` configuration: names and numbers in
  any language, no stemming) with a GIN index;
- SQLite (the embedded default): an external-content FTS5 table `receipts_fts` over the same four
  columns, filled from the existing rows and kept in step by insert/update/delete triggers.
"""

from alembic import op

revision = '0015_desk'
down_revision = '0012_queue'
branch_labels = None
depends_on = None

COLUMNS = ("supplier", "invoice_number", "description", "translation")
# Written out (no string building): a later batch migration that copies `receipts` on SQLite drops these
# triggers with the old table and must create them again.
SQLITE = (
    "CREATE VIRTUAL TABLE receipts_fts USING fts5(supplier, invoice_number, description, translation, "
    "content='receipts', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO receipts_fts(receipts_fts) VALUES ('rebuild')",
    "CREATE TRIGGER receipts_fts_insert AFTER INSERT ON receipts BEGIN "
    "INSERT INTO receipts_fts(rowid, supplier, invoice_number, description, translation) "
    "VALUES (new.id, new.supplier, new.invoice_number, new.description, new.translation); END",
    "CREATE TRIGGER receipts_fts_delete AFTER DELETE ON receipts BEGIN "
    "INSERT INTO receipts_fts(receipts_fts, rowid, supplier, invoice_number, description, translation) "
    "VALUES ('delete', old.id, old.supplier, old.invoice_number, old.description, old.translation); END",
    "CREATE TRIGGER receipts_fts_update AFTER UPDATE OF supplier, invoice_number, description, translation "
    "ON receipts BEGIN "
    "INSERT INTO receipts_fts(receipts_fts, rowid, supplier, invoice_number, description, translation) "
    "VALUES ('delete', old.id, old.supplier, old.invoice_number, old.description, old.translation); "
    "INSERT INTO receipts_fts(rowid, supplier, invoice_number, description, translation) "
    "VALUES (new.id, new.supplier, new.invoice_number, new.description, new.translation); END",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        document = " || ' ' || ".join(f"coalesce({c}, '')" for c in COLUMNS)
        op.execute(f"ALTER TABLE receipts ADD COLUMN search_vector tsvector "
                   f"GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, {document})) STORED")
        op.execute("CREATE INDEX ix_receipts_search ON receipts USING gin (search_vector)")
    elif dialect == "sqlite":
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_receipts_search")
        op.execute("ALTER TABLE receipts DROP COLUMN IF EXISTS search_vector")
    elif dialect == "sqlite":
        for name in ("receipts_fts_update", "receipts_fts_delete", "receipts_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS receipts_fts")
