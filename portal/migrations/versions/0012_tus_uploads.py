"""resumable uploads (tus)

Revision ID: 0012_tus
Revises: 0011
Create Date: 2026-11-26 14:10:00

One row per tus upload: who, which case, how many bytes arrived (the pieces are objects in the storage
backend, listed on the row), and once complete and checked the stored file a form may claim.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012_tus'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=True),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("filetype", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("pieces", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("problem", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("problem_args", sa.JSON(), nullable=True),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("original_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("metadata_removed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("claimed_receipt_id", sa.Integer(), nullable=True),
        sa.Column("claimed_visit_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_upload_user_id_status", "upload", ["user_id", "status"])
    op.create_index("ix_upload_expires_at", "upload", ["expires_at"])
    op.create_index("ix_upload_case_id", "upload", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_upload_case_id", table_name="upload")
    op.drop_index("ix_upload_expires_at", table_name="upload")
    op.drop_index("ix_upload_user_id_status", table_name="upload")
    op.drop_table("upload")
