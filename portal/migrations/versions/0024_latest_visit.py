"""latest visit: each case's latest visit, kept for the visits due list

Revision ID: 0024_latest_visit
Revises: 0021_prefill
Create Date: 2026-11-26 21:40:00

- `case_latest_visits`: one row per case with visits: its latest visit (by visit date, then id) and the next
  visit date that visit set, indexed by that date (portal/visits/latest.py keeps it in step with every new
  visit). Filled here from the visits.
"""

import sqlalchemy as sa
from alembic import op

revision = '0024_latest_visit'
down_revision = '0021_prefill'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_latest_visits",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("next_visit_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_index("ix_case_latest_visits_next_visit_date", "case_latest_visits", ["next_visit_date"])
    op.execute(
        "INSERT INTO case_latest_visits (case_id, visit_id, visit_date, next_visit_date) "
        "SELECT case_id, id, visit_date, next_visit_date FROM ("
        "  SELECT case_id, id, visit_date, next_visit_date, row_number() OVER "
        "  (PARTITION BY case_id ORDER BY visit_date DESC, id DESC) AS rank FROM visits) AS ranked "
        "WHERE rank = 1")


def downgrade() -> None:
    op.drop_index("ix_case_latest_visits_next_visit_date", table_name="case_latest_visits")
    op.drop_table("case_latest_visits")
