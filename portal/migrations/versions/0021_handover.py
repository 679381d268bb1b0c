"""handover confirmations of receipts

Revision ID: 0018_handover
Revises: 0018_ocr
Create Date: 2026-12-01 10:00:00

New tables only (receipts is not copied): a handover (date, who received, where, the partner's statement)
covers one or several receipts of a case (handover_receipts) and has proof files, which are receipt files
of kind "handover" (handover_files); handover_exemptions holds staff's "not applicable" with its reason.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018_handover'
down_revision = '0018_ocr'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("handed_over_on", sa.Date(), nullable=False),
        sa.Column("received_by", sa.String(length=200), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("statement_confirmed", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_handovers_case_id", "handovers", ["case_id"])
    op.create_table(
        "handover_receipts",
        sa.Column("receipt_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipts.id"]),
        sa.ForeignKeyConstraint(["handover_id"], ["handovers.id"]),
        sa.PrimaryKeyConstraint("receipt_id"),
    )
    op.create_index("ix_handover_receipts_handover_id", "handover_receipts", ["handover_id"])
    op.create_table(
        "handover_files",
        sa.Column("file_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["receipt_files.id"]),
        sa.ForeignKeyConstraint(["handover_id"], ["handovers.id"]),
        sa.PrimaryKeyConstraint("file_id"),
    )
    op.create_index("ix_handover_files_handover_id", "handover_files", ["handover_id"])
    op.create_table(
        "handover_exemptions",
        sa.Column("receipt_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipts.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("receipt_id"),
    )


def downgrade() -> None:
    op.drop_table("handover_exemptions")
    op.drop_index("ix_handover_files_handover_id", table_name="handover_files")
    op.drop_table("handover_files")
    op.drop_index("ix_handover_receipts_handover_id", table_name="handover_receipts")
    op.drop_table("handover_receipts")
    op.drop_index("ix_handovers_case_id", table_name="handovers")
    op.drop_table("handovers")
