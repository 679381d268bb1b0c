"""receipt texts: what text recognition found on each receipt's first file

Revision ID: 0018_ocr
Revises: 0018_neardup
Create Date: 2026-11-26 17:30:00

One row per receipt (portal/ocr): the recognised text, its lines with their boxes, and the fields found
in it (supplier, invoice number, date, amount, currency) with where on the page each came from. Filled by
the `read_receipt` job after an upload and by the `ocr_catchup` job for older receipts.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018_ocr'
down_revision = '0018_neardup'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipt_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("engine", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("script", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("millis", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["file_id"], ["receipt_files.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("receipt_id"),
    )


def downgrade() -> None:
    op.drop_table("receipt_texts")
