"""rate evidence: the imported files kept, and a source reference for typed rates

Revision ID: 0018_rates
Revises: 0014_dash
Create Date: 2026-11-27 10:00:00

`rate_evidence` holds one row per imported rate file (by SHA-256; the file itself is in storage under
`rates/<sha256>.<ext>`). Each exchange rate links to the file it was imported from (`evidence_id`), or
carries the reference a staff member gave for a rate typed in (`source_ref`). Only `exchange_rates` is
altered (a batch copy on SQLite: a small table without triggers).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018_rates'
down_revision = '0014_dash'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("original_filename", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("exchange_rates") as batch:
        batch.add_column(sa.Column("source_ref", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("evidence_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_exchange_rates_evidence_id", "rate_evidence", ["evidence_id"], ["id"])
        batch.create_index("ix_exchange_rates_evidence_id", ["evidence_id"])


def downgrade() -> None:
    with op.batch_alter_table("exchange_rates") as batch:
        batch.drop_index("ix_exchange_rates_evidence_id")
        batch.drop_constraint("fk_exchange_rates_evidence_id", type_="foreignkey")
        batch.drop_column("evidence_id")
        batch.drop_column("source_ref")
    op.drop_table("rate_evidence")
