"""outbox: a sender's claim on a message, and a once-key for mails that go out once per day

Revision ID: 0012_queue
Revises: 0011
Create Date: 2026-11-26 14:00:00

The task queue's send_mail job claims a message with a conditional UPDATE (claimed_until, a lease that
runs out if the sender dies) so that two workers never send it twice. once_key (unique) marks mails that
must exist at most once, e.g. a user's visit digest of one day however often the digest job runs.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012_queue'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('once_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_once_key'), ['once_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_once_key'))
        batch_op.drop_column('once_key')
        batch_op.drop_column('claimed_until')
