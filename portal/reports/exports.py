"""The Belegliste as XLSX and CSV, and the audit log as CSV.

Numbers are written as numbers (XLSX) or plain decimals with a point (CSV), dates as dates (XLSX) or
ISO 8601 (CSV). Text that a spreadsheet would run as a formula is kept as text (portal.csvfile, also after
a ";" or ","): suppliers and comments are typed by people outside Micado.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from portal import csvfile
from portal.receipts import handover
from portal.receipts.models import RATE_SCALE
from portal.receipts.money import currency_precision
from portal.reports.services import BelegRow


def belegliste_header() -> list[str]:
    return [_("No."), _("Case reference"), _("Receipt"), _("Supplier"), _("Invoice number"), _("Invoice date"),
            _("Amount"), _("Currency"), _("Exchange rate (units for 1 EUR)"), _("Rate month"), _("Rate source"),
            _("EUR amount"), _("Budget category"), _("Budget line"), _("Approval date"), _("Approvers"),
            _("Translation"), _("Drawn for a sample check"), _("Sample checked by"), _("Sample check outcome"),
            _("Rate evidence"), _("Rate evidence link"),
            *handover.belegliste_header()]


def amount(minor: int, currency: str) -> Decimal:
    places = currency_precision(currency)
    return (Decimal(minor) / (10 ** places)).quantize(Decimal(1).scaleb(-places))


def eur(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(Decimal("0.01"))


def rate(micro: int | None) -> Decimal | None:
    return None if micro is None else (Decimal(micro) / RATE_SCALE).normalize()


def belegliste_values(row: BelegRow, category_label: Callable[[str], str]) -> list:
    """One row of the list as typed values (Decimal, date, str, int, None)."""
    return [row.number, row.case_reference, row.receipt_reference, row.supplier, row.invoice_number,
            row.invoice_date, amount(row.amount_minor, row.currency), row.currency, rate(row.rate_micro),
            row.rate_month.strftime("%Y-%m") if row.rate_month else None, row.rate_source or "",
            eur(row.eur_cents), category_label(row.budget_category), row.budget_line, row.approved_on,
            ", ".join(row.approvers), row.translation, _("Yes") if row.sample_drawn else _("No"),
            row.sample_checked_by, sample_outcome(row), row.rate_evidence, row.rate_evidence_url,
            *handover.belegliste_values(row.handover)]


def sample_outcome(row: BelegRow) -> str:
    if not row.sample_drawn:
        return ""
    return {"ok": _("In order"), "issue": _("Problem found")}.get(row.sample_outcome, _("Waiting for the check"))


def to_csv(header: list[str], rows: Iterable[list]) -> bytes:
    return csvfile.to_csv(header, rows)


def belegliste_csv(rows: list[BelegRow], category_label: Callable[[str], str]) -> bytes:
    return to_csv(belegliste_header(), (belegliste_values(r, category_label) for r in rows))


def belegliste_xlsx(rows: list[BelegRow], category_label: Callable[[str], str], start: date, end: date,
                    generated: str) -> bytes:
    """The list on its first sheet (header in row 1, a total under the last row), the period on a second."""
    wb = Workbook()
    ws = wb.active
    ws.title = _("Belegliste")[:31]
    header = belegliste_header()
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    formats = {6: "yyyy-mm-dd", 9: "0.000000", 12: "#,##0.00", 15: "yyyy-mm-dd",
               header.index(handover.belegliste_header()[0]) + 1: "yyyy-mm-dd"}
    for r, row in enumerate(rows, start=2):
        values = belegliste_values(row, category_label)
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text, never a formula
            if c in formats:
                cell.number_format = formats[c]
            elif c == 7:
                places = currency_precision(row.currency)
                cell.number_format = "#,##0" + ("." + "0" * places if places else "")
            if value and c == header.index(_("Rate evidence link")) + 1:
                cell.hyperlink, cell.style = value, "Hyperlink"
    total_row = len(rows) + 3
    ws.cell(row=total_row, column=1, value=_("Total")).font = Font(bold=True)
    total = ws.cell(row=total_row, column=12, value=sum((eur(r.eur_cents) or Decimal(0)) for r in rows))
    total.number_format, total.font = "#,##0.00", Font(bold=True)
    widths = [6, 14, 10, 28, 16, 12, 14, 9, 14, 10, 18, 14, 20, 36, 12, 30, 40, 10, 20, 18, 40, 40]
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    for name, w in zip(handover.belegliste_header(), (12, 18, 30), strict=True):
        ws.column_dimensions[get_column_letter(header.index(name) + 1)].width = w

    info = wb.create_sheet(_("Period")[:31])
    info.append([_("Period from"), start])
    info.append([_("Period to"), end])
    info.append([_("Receipts"), len(rows)])
    info.append([_("Generated"), generated])
    for cell in (info["B1"], info["B2"]):
        cell.number_format = "yyyy-mm-dd"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def audit_header() -> list[str]:
    return [_("Time (UTC)"), _("User ID"), _("User"), _("Action"), _("Object type"), _("Object ID"), _("Before"),
            _("After"), _("Sequence"), _("Hash")]


def audit_csv(entries: Iterable) -> bytes:
    def rows():
        for entry, name in entries:
            yield [entry.at.strftime("%Y-%m-%d %H:%M:%S"), entry.actor_id, name, entry.action, entry.object_type,
                   entry.object_id, json.dumps(entry.before, ensure_ascii=False, sort_keys=True) if entry.before
                   else "", json.dumps(entry.after, ensure_ascii=False, sort_keys=True) if entry.after else "",
                   # The entry's place in the audit log's hash chain, where the log has one.
                   getattr(entry, "seq", None), getattr(entry, "hash", None)]

    return to_csv(audit_header(), rows())
