"""workshop

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 21:38:08.252562
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workshops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
    sa.Column('translations', sa.JSON(), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('venue', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('registration_deadline', sa.Date(), nullable=False),
    sa.Column('working_languages', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('travel_support', sa.Boolean(), nullable=False),
    sa.Column('visa_letters', sa.Boolean(), nullable=False),
    sa.Column('moderated', sa.Boolean(), nullable=False),
    sa.Column('passport_purged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('personal_data_purged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_key')
    )
    op.create_table('workshop_registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workshop_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('organisation', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('languages', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('dietary_needs', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('accessibility_needs', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('travel_support', sa.Boolean(), nullable=False),
    sa.Column('visa_letter', sa.Boolean(), nullable=False),
    sa.Column('passport_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('nationality', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('passport_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('consent_processing', sa.Boolean(), nullable=False),
    sa.Column('consent_list', sa.Boolean(), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('link_nonce', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('staff_message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('confirmed_email_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('waitlisted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workshop_id'], ['workshops.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workshop_id', 'email', name='uq_workshop_registration_email')
    )
    with op.batch_alter_table('workshop_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workshop_registrations_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_workshop_registrations_waitlisted_at'), ['waitlisted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_workshop_registrations_workshop_id'), ['workshop_id'], unique=False)

    op.create_table('workshop_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workshop_id', sa.Integer(), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['workshop_id'], ['workshops.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('workshop_stats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workshop_stats_workshop_id'), ['workshop_id'], unique=False)

    op.add_column('outbox', sa.Column('attachments', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('attachments')

    with op.batch_alter_table('workshop_stats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workshop_stats_workshop_id'))

    op.drop_table('workshop_stats')
    with op.batch_alter_table('workshop_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workshop_registrations_workshop_id'))
        batch_op.drop_index(batch_op.f('ix_workshop_registrations_waitlisted_at'))
        batch_op.drop_index(batch_op.f('ix_workshop_registrations_status'))

    op.drop_table('workshop_registrations')
    op.drop_table('workshops')
