"""Summary tables behind the budget dashboard, kept up to date in the same transaction as every change of
a receipt, a budget line or a case (portal/reports/summary.py), and checked by `reports reconcile`.

- budget_summary: one row per case (its planned, submitted, approved EUR cents, counted receipts without
  a rate, and the organisation and country it was last counted under);
- budget_case_months: per case and invoice month ('YYYY-MM'), submitted and approved EUR cents;
- budget_rollup: the dashboard's groups — kind 'total' (key ''), 'country' (ISO code), 'org'
  (organisation id) and 'month' ('YYYY-MM') — as sums of the rows above.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel


def _cents() -> Column:
    return Column(BigInteger, nullable=False, server_default="0")


class BudgetSummary(SQLModel, table=True):
    __tablename__ = "budget_summary"

    # No foreign key: a derived row, rebuilt by `reports reconcile --fix` if it ever goes astray.
    case_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    organisation_id: int = Field(index=True)
    country: str = Field(max_length=2)
    planned: int = Field(default=0, sa_column=_cents())
    submitted: int = Field(default=0, sa_column=_cents())
    approved: int = Field(default=0, sa_column=_cents())
    without_rate: int = 0


class BudgetCaseMonth(SQLModel, table=True):
    __tablename__ = "budget_case_months"

    case_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    month: str = Field(primary_key=True, max_length=7)
    submitted: int = Field(default=0, sa_column=_cents())
    approved: int = Field(default=0, sa_column=_cents())


class BudgetRollup(SQLModel, table=True):
    __tablename__ = "budget_rollup"

    kind: str = Field(primary_key=True, max_length=8)
    key: str = Field(primary_key=True, max_length=16)
    planned: int = Field(default=0, sa_column=_cents())
    submitted: int = Field(default=0, sa_column=_cents())
    approved: int = Field(default=0, sa_column=_cents())
    without_rate: int = 0
    cases: int = 0
    over_plan: int = 0
