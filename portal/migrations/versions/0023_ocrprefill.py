"""ocr prefill: the recognised text of uploads (the form's suggestions) and full-text search in receipt texts

Revision ID: 0021_prefill
Revises: 0018_perf
Create Date: 2026-11-27 10:00:00

- `upload_texts`: what text recognition found on a completed receipt upload before its receipt exists
  (portal/ocr/prefill.py); one row per upload, removed with it.
- The recognised text joins the receipts' search (portal.receipts.search.search_condition):
  PostgreSQL: a stored generated tsvector column `receipt_texts.search_vector` (`simple`) with a GIN index;
  SQLite: an external-content FTS5 table `receipt_texts_fts` over `receipt_texts.text`, filled from the
  existing rows and kept in step by triggers.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0021_prefill'
down_revision = '0018_perf'
branch_labels = None
depends_on = None

# Written out: a later batch migration that copies `receipt_texts` on SQLite must create these again.
SQLITE = (
    "CREATE VIRTUAL TABLE receipt_texts_fts USING fts5(text, content='receipt_texts', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO receipt_texts_fts(receipt_texts_fts) VALUES ('rebuild')",
    "CREATE TRIGGER receipt_texts_fts_insert AFTER INSERT ON receipt_texts BEGIN "
    "INSERT INTO receipt_texts_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER receipt_texts_fts_delete AFTER DELETE ON receipt_texts BEGIN "
    "INSERT INTO receipt_texts_fts(receipt_texts_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER receipt_texts_fts_update AFTER UPDATE OF text ON receipt_texts BEGIN "
    "INSERT INTO receipt_texts_fts(receipt_texts_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO receipt_texts_fts(rowid, text) VALUES (new.id, new.text); END",
)


def upgrade() -> None:
    op.create_table(
        "upload_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("crops", sa.JSON(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("engine", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("script", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("millis", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["upload.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("upload_id"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("ALTER TABLE receipt_texts ADD COLUMN search_vector tsvector "
                   "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, coalesce(text, ''))) STORED")
        op.execute("CREATE INDEX ix_receipt_texts_search ON receipt_texts USING gin (search_vector)")
    elif dialect == "sqlite":
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_receipt_texts_search")
        op.execute("ALTER TABLE receipt_texts DROP COLUMN IF EXISTS search_vector")
    elif dialect == "sqlite":
        for name in ("receipt_texts_fts_update", "receipt_texts_fts_delete", "receipt_texts_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS receipt_texts_fts")
    op.drop_table("upload_texts")
