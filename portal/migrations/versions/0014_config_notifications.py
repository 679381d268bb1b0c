"""notifications of decisions and comments, mailed as digests

Revision ID: 0012_config
Revises: 0012_attack
Create Date: 2026-11-26 14:20:00

A notification row is written with each decision on a receipt and each staff comment on a visit, for
every partner of the organisation and every staff member following the item; `flask --app portal mail
digests` mails them as one message per user and hour at most (users.last_digest_at), unless the user
turned them off (users.mail_digest).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012_config'
down_revision = '0012_attack'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("mail_digest", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("last_digest_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("object_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notifications_user_id", "notifications", ["user_id"])
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])
    op.create_index("ix_notifications_sent_at", "notifications", ["sent_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_digest_at")
        batch.drop_column("mail_digest")
