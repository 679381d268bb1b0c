"""open flagged visits indexed by age

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 00:40:00

The review desk lists flagged, unacknowledged visits oldest first (ORDER BY created_at, id LIMIT n). With
the partial index of 0009 on acknowledged_at, PostgreSQL walked ix_visits_created_at and filtered out
every visit that was not an open flag (29,850 of 30,000 rows, 15 ms per desk page). The same partial
index keyed by (created_at, id) gives the page's rows in order and still serves the navigation's count.
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _open_flags(true: str) -> sa.TextClause:  # as in 0009: the query's own wording, for the planner
    names = ("flag_health", "flag_psychosocial", "flag_family", "flag_safety", "flag_legal")
    return sa.text("(" + " OR ".join(f"{name} IS {true}" for name in names) + ") AND acknowledged_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_visits_open_flags", table_name="visits")
    op.create_index("ix_visits_open_flags", "visits", ["created_at", "id"],
                    postgresql_where=_open_flags("true"), sqlite_where=_open_flags("1"))


def downgrade() -> None:
    op.drop_index("ix_visits_open_flags", table_name="visits")
    op.create_index("ix_visits_open_flags", "visits", ["acknowledged_at"],
                    postgresql_where=_open_flags("true"), sqlite_where=_open_flags("1"))
