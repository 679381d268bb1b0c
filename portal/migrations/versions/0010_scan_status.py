"""malware scan status of receipt files and visit photos

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 23:30:00

Files stored before scanning existed were never scanned: they become "unscanned", not "clean" (nobody
checked them). With a scanner configured, `flask --app portal scanning rescan` scans them like pending
files; without one they behave as before.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ("receipt_files", "visit_photos")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("scan_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                       server_default="unscanned"))
            batch.add_column(sa.Column("scanned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
            batch.add_column(sa.Column("scan_signature", sqlmodel.sql.sqltypes.AutoString(length=200),
                                       nullable=True))
        op.create_index(f"ix_{table}_scan_status", table, ["scan_status"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_scan_status", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("scan_signature")
            batch.drop_column("scanned_at")
            batch.drop_column("scan_status")
