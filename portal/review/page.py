"""The review desk's page: what each queue item shows, worked out once per page.

The template only places these strings: URLs are built from one pattern per kind of link, the labels are
translated once per locale (a table kept per locale: the catalogs do not change while the process runs),
money and dates go through the kept formatters of portal.i18n, and every choice (may the viewer approve,
tick, check?) is made here, from the rules the desk always had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache

from flask import render_template_string, url_for
from flask_babel import get_timezone, ngettext
from flask_babel import gettext as _
from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from portal.i18n import country_name, format_date, locale_name, money
from portal.layout import keep, url_pattern
from portal.receipts import previews
from portal.receipts.money import from_minor
from portal.review import services
from portal.scanning import services as scanning

RECEIPT_TYPES = (services.NEW, services.CORRECTED, services.SECOND)


class Labels:
    """The desk's fixed texts in one language (attributes: Jinja reads them without a dict lookup's miss)."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {services.NEW: _("Submitted receipt"), services.CORRECTED: _("Corrected receipt"),
                      services.SECOND: _("Waiting for a second approval"), services.SAMPLE: _("Sample check"),
                      services.VISIT: _("Flagged visit"), services.REGISTRATION: _("Registration to approve")}
        self.warnings = {"duplicate": _("Possible duplicate"), "over_budget": _("Over budget"),
                         "outside_period": _("Outside project period"), "rate_missing": _("Rate missing"),
                         "new_supplier": _("First receipt of a new supplier")}
        self.larger_view = _("Larger view")
        self.pending_scan = _("Pending virus scan")
        self.no_preview = _("No preview of this file.")
        self.no_file = _("No file.")
        self.budget_line = _("Budget line")
        self.planned = _("Planned")
        self.submitted = _("Submitted")
        self.approved = _("Approved")
        self.remaining = _("Remaining")
        self.organisation = _("Organisation")
        self.country = _("Country")
        self.workshop = _("Workshop")
        self.supplier = _("Supplier name")
        self.amount = _("Amount")
        self.concerns = _("Concerns")
        self.waiting = _("Waiting")
        self.warnings_intro = _("Warnings:")
        self.problem = _("There is a problem")
        self.pick = _("Select for approval")
        self.mine = _("You uploaded this receipt, so another staff member must approve it.")
        self.approved_by_me = _("You have already approved this receipt. A second, different staff member must "
                                "approve it.")
        self.no_rate = _("Add the exchange rate for this currency and month before approving.")
        self.approve = _("Approve")
        self.first_of_two = _("(first of two approvals)")
        self.reason = _("Reason or what to correct")
        self.reason_hint = _("Required for a rejection or a correction request. The partner sees it.")
        self.reject = _("Reject")
        self.correction = _("Request a correction")
        self.findings = _("Findings of the check")
        self.findings_hint = _("Required when you found a problem. A problem sends the receipt back to the "
                               "partner for correction, with these findings as what to correct.")
        self.checked_ok = _("Checked: in order")
        self.checked_issue = _("Checked: problem found")
        self.comment_optional = _("Comment (optional)")
        self.acknowledge = _("Acknowledge")
        self.open_registration = _("Open the registration to decide")
        self.preview_alt = _("Receipt %(ref)s, first page")
        self.visit_of = _("Visit of %(date)s")
        self.handover_due = _("No handover confirmed; it was due on %(date)s.")
        # The texts above are the template's own: marked safe as Jinja's _() marks a translation (values put
        # into them with `%` are escaped). The type and warning labels and the conflicts below are Python's,
        # which the page escapes, as it always did.
        for name, text in vars(self).items():
            if isinstance(text, str):
                setattr(self, name, Markup(text))  # noqa: S704 - the catalog's own text
        self.conflicts = {services.UPLOADER: services.conflict_message(services.UPLOADER),
                          services.APPROVER: services.conflict_message(services.APPROVER)}


@lru_cache(maxsize=16)
def _labels(_locale: str) -> Labels:
    return Labels()


def labels() -> Labels:
    return _labels(locale_name())


@dataclass(slots=True)
class Line:
    planned: str
    submitted: str
    approved: str
    remaining: str
    over: bool


@dataclass(slots=True)
class Shown:
    """One queue item as the page shows it."""

    item: services.QueueItem
    key: str
    badge: str
    title_url: str
    title: str
    case_url: str = ""
    case_ref: str = ""
    ref: str = ""  # the receipt's reference, when the item is a receipt
    preview_url: str = ""
    preview_alt: str = ""
    no_preview: str = ""  # the hint in place of a picture
    ocr_url: str = ""  # the recognised text, when the receipt has a file
    line: Line | None = None
    country: str = ""
    supplier: str = ""
    invoice_number: str = ""
    invoice_date: str = ""
    amount: str = ""
    waiting: str = ""
    warnings: list[str] = field(default_factory=list)
    handover_missing: str = ""  # the label, when no handover is confirmed and it is due
    handover_due: str = ""
    # The decision: "receipt" (approve, reject, correct), "sample", "visit", "registration"; "" for none.
    decision: str = ""
    action_url: str = ""
    version: int = 0  # the receipt's version the decision was made on
    pick: str = ""  # the bulk approval's checkbox value ("id:version"), when the item may be ticked
    blocked: str = ""  # why the viewer may not approve it
    first_of_two: bool = False
    conflict: str = ""
    position: int = 0  # the item's place on the page (sent with a decision: focus stays there)
    problem: str = ""  # why the decision just sent on this item was not recorded
    typed: str = ""  # the comment sent with it, kept


def _local_date(moment: datetime, tz) -> date:
    """The day of a moment in the user's time zone, as flask_babel.format_date() rebases it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return tz.normalize(moment.astimezone(tz)).date()


def shown_items(items: list[services.QueueItem], args: dict[str, str], viewer_id: int, now: datetime,
                four_eyes_cents: int, problems: dict[str, str], typed: dict[str, str]) -> list[Shown]:
    t = labels()
    tz = get_timezone()
    receipt_url = url_pattern("receipts.show", "receipt_id")
    case_url = url_pattern("cases.show", "case_id")
    visit_url = url_pattern("visits.show", "visit_id")
    ocr_url = url_pattern("ocr.text", "receipt_id")
    decide_url = url_pattern("review.decide", "receipt_id", **args)
    check_url = url_pattern("review.check_sample", "sample_item_id", **args)
    ack_url = url_pattern("review.acknowledge", "visit_id", **args)
    preview_url = url_pattern("receipts.preview", "receipt_id", "file_id")
    waiting_texts: dict[int, str] = {}
    # The same days and countries come back item after item: each written once per page.
    dates: dict[date, str] = {}
    countries: dict[str, str] = {}

    def day(value: date) -> str:
        text = dates.get(value)
        if text is None:
            text = dates[value] = format_date(value)
        return text

    def country(code: str) -> str:
        name = countries.get(code)
        if name is None:
            name = countries[code] = country_name(code)
        return name

    out = []
    for position, item in enumerate(items):
        r, case, key = item.receipt, item.case, item.key
        days = item.age_days(now)
        waiting = waiting_texts.get(days)
        if waiting is None:  # as Jinja's ngettext(): the translation marked safe
            waiting = waiting_texts[days] = Markup(ngettext("%(num)d day", "%(num)d days", days))  # noqa: S704
        s = Shown(item, key, t.types[item.type], "", "",
                  waiting=waiting + " (" + day(_local_date(item.since, tz)) + ")", position=position)
        if problems:
            s.problem, s.typed = problems.get(key, ""), typed.get(key, "")
        if case is not None:
            s.case_url = case_url % case.id
            s.case_ref = case.reference
            s.country = country(case.country)
        elif item.type == services.REGISTRATION:
            s.country = country(item.extra["country"])
        if r is not None:
            ref = s.ref = s.title = r.reference
            s.title_url = receipt_url % r.id
            f = item.file
            if previews.has_preview(f):
                s.preview_url = preview_url % (r.id, f.id)
                s.preview_alt = t.preview_alt % {"ref": ref}
            elif f is not None:
                s.no_preview = t.pending_scan if scanning.scan_state(f) == "pending" else t.no_preview
            else:
                s.no_preview = t.no_file
            if f is not None:
                s.ocr_url = ocr_url % r.id
            line = item.line
            if line is not None:
                s.line = Line(money(line.planned_cents), money(line.submitted_cents), money(line.approved_cents),
                              money(line.remaining_cents), line.remaining_cents < 0)
            s.supplier, s.invoice_number, s.invoice_date = r.supplier, r.invoice_number, day(r.invoice_date)
            s.amount = _amount(r.amount_minor, r.currency)
            if r.currency != "EUR":
                s.amount += " = " + money(r.eur_cents)
            s.warnings = [t.warnings[w] for w in item.warnings]
            if item.handover is not None and item.handover.missing:
                s.handover_missing = item.handover.label
                s.handover_due = t.handover_due % {"date": day(item.handover.due_on)}
        elif item.visit is not None:
            s.title_url = visit_url % item.visit.id
            s.title = t.visit_of % {"date": day(item.visit.visit_date)}
        else:
            s.title_url = url_for("workshop.registration", workshop_id=item.extra["workshop_id"],
                                  registration_id=item.extra["id"])
            s.title = item.extra["name"]
        if item.type in RECEIPT_TYPES:
            s.decision = "receipt"
            s.action_url = decide_url % r.id
            s.version = r.version
            if r.uploaded_by_id == viewer_id:
                s.blocked = t.mine
            elif item.first_approver_id == viewer_id:
                s.blocked = t.approved_by_me
            elif r.eur_cents is None:
                s.blocked = t.no_rate
            else:
                s.pick = f"{r.id}:{r.version}"
                s.first_of_two = r.eur_cents > four_eyes_cents and item.first_approver_id is None
        elif item.type == services.SAMPLE:
            if item.conflict:
                s.conflict = t.conflicts.get(item.conflict) or services.conflict_message(item.conflict)
            else:
                s.decision = "sample"
                s.action_url = check_url % item.sample.id
        elif item.type == services.VISIT:
            s.decision = "visit"
            s.action_url = ack_url % item.visit.id
        elif item.type == services.REGISTRATION:
            s.decision = "registration"
        out.append(s)
    return out


def _amount(amount_minor: int, currency: str) -> str:
    """As the template global minor_money() writes it (portal/receipts/__init__.py)."""
    from portal.i18n import amount

    return amount(from_minor(amount_minor, currency), currency)


def select_field(f) -> Markup | None:
    """A filter's <select> with its label, as the form macro field() writes one without errors or hint
    (templates/_macros/forms.html), built in one go instead of through WTForms' widget option by option;
    None for any other field, which the template leaves to the macro."""
    if f.errors or f.description or f.type != "SelectField":
        return None
    current = f.data
    options = "".join(f'<option selected value="{escape(value)}">{escape(label or value)}</option>'
                      if value == current else f'<option value="{escape(value)}">{escape(label or value)}</option>'
                      for value, label in f.choices)
    return Markup(f'<div class="field ">\n    <label for="{escape(f.id)}">{escape(f.label.text)}</label>\n'  # noqa: S704
                  f'    <select id="{escape(f.id)}" name="{escape(f.name)}">{options}</select>\n</div>\n')


_MARK = "\x00"  # where a kept text field's value goes


def text_field(form, name: str) -> Markup | None:
    """A filter's text input with its label and hint, as the form macro field() writes it without errors:
    written by the macro once per language with a marker for the value (labels, hint and the amount
    fields' number formats depend on nothing else) and kept; None when the field has errors, which the
    template leaves to the macro."""
    f = form[name]
    if f.errors:
        return None

    def render() -> str:
        blank = type(form)(formdata=MultiDict({name: _MARK}))
        return render_template_string('{% from "_macros/forms.html" import field %}{{ field(f) }}',
                                      f=blank[name])

    head, tail = keep("review-filter", render, name).split(_MARK)
    return Markup(head + escape(f._value()) + tail)  # noqa: S704 - the macro's HTML and the escaped value
