"""server-side sessions: one row per signed-in browser, deleted at sign-out

Revision ID: 0012_attack
Revises: 0012_tus
Create Date: 2026-11-26 14:00:00

Flask's session and the remember-me cookie are signed cookies the server cannot take back: after
"sign out" a copy of them stayed valid until the idle timeout. Each sign-in now gets a random session id
(in both cookies); the user loader accepts it only while its row exists.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012_attack'
down_revision = '0012_tus'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_sessions_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('user_sessions')
