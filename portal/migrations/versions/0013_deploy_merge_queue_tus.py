"""merge the queue and tus migrations

Revision ID: 0013_deploy
Revises: 0012_queue, 0012_tus
Create Date: 2026-11-26 14:10:00

Only joins the two heads so `db upgrade head` works on the deploy branch, which merged both; the
integrator may re-chain 0012_queue and 0012_tus and drop this file.
"""

revision = '0013_deploy'
down_revision = ('0012_queue', '0012_tus')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
