"""Handover confirmations on the receipt page: the partner confirms, staff mark "not applicable"."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import db
from portal.auth.services import staff_required
from portal.htmx import done
from portal.receipts import handover, services
from portal.receipts.errors import ReceiptError
from portal.receipts.handover_forms import HandoverForm, NotApplicableForm
from portal.rules import put_on_form
from portal.scanning import services as scanning
from portal.storage import get_storage
from portal.uploads import services as uploads

bp = Blueprint("handover", __name__)


def _also(session, receipt) -> tuple[list[tuple[int, str]], dict]:
    """The case's other open receipts: as the form's choices, and by id for the page, which isolates each
    reference (<bdi>) and lets the rest of the label wrap."""
    rows = handover.open_receipts(session, receipt)
    return ([(r.id, f"{r.reference} – {r.supplier}, {format_date(r.invoice_date)}") for r in rows],
            {r.id: r for r in rows})


def _cards(case_id: int) -> list:
    """The form's resumable uploads, listed again after an error so none is lost."""
    return uploads.listed(db.session(), current_user, case_id, request.form.getlist("uploads"))


def part(session, user, receipt, form=None, exempt_form=None, state=None) -> dict:
    """What the receipt page's handover section needs (receipts/_handover.html); `state`: the receipt's
    handover state when the caller read it already."""
    if state is None:
        state = handover.state_of(session, receipt)
    ctx = {"handover_state": state, "handover_due_days": handover.due_days(),
           "handover_details": handover.details(session, receipt) if state.status == "confirmed" else None,
           "handover_exemption": handover.exemption_of(session, receipt) if state.status == "not_applicable"
           else None,
           "handover_form": None, "exempt_form": None, "handover_cards": [], "handover_proof": [],
           "handover_open": {}}
    if handover.can_confirm(session, user, receipt, known=state):
        choices, ctx["handover_open"] = _also(session, receipt)
        if form is None:
            form = HandoverForm(formdata=None, prefix="handover", handed_over_on=handover.today(),
                                received_by=handover.case_reference(session, receipt))
        else:
            ctx["handover_cards"] = _cards(receipt.case_id)
        form.also.choices = choices
        ctx["handover_form"] = form
        ctx["handover_proof"] = handover.unlinked_proof(session, [receipt.id])
    if handover.can_exempt(session, user, receipt, known=state):
        ctx["exempt_form"] = exempt_form or NotApplicableForm(formdata=None, prefix="exempt")
    return ctx


def _show(receipt, status: int, **forms):
    from portal.receipts import views  # the receipt page itself; views imports this module's part()

    return views._show(receipt, status, **forms)


@bp.post("/receipts/<int:receipt_id>/handover")
@login_required
def confirm(receipt_id: int):
    """Confirm that the goods of a receipt (and of others of the same delivery) reached the returnee."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    form = HandoverForm(prefix="handover")
    form.also.choices = _also(session, receipt)[0]
    valid = form.validate_on_submit()  # first: validation resets the fields' errors
    resolved = uploads.resolve(session, current_user, receipt.case_id, request.form.getlist("uploads"),
                               ("handover",))
    if resolved.problems:
        form.files.errors = [*form.files.errors, *resolved.problems]
    if valid and not resolved.problems:
        data = handover.Confirmation(handed_over_on=form.handed_over_on.data, received_by=form.received_by.data,
                                     place=form.place.data, statement=bool(form.statement.data),
                                     also=list(form.also.data or []))
        plain = [("files", "handover", services.Upload(f.filename or "", f.stream))
                 for f in form.files.data or [] if f and f.filename]
        try:
            files = services.clean_uploads(plain) + [("files", "handover", uploads.adopted(row))
                                                     for row in resolved.rows]
            _handover, rows = handover.confirm(session, get_storage(), current_user, receipt, data, files)
        except ReceiptError as exc:
            if not handover.can_confirm(session, current_user, receipt):  # confirmed meanwhile: say so there
                return done(url_for("receipts.show", receipt_id=receipt.id) + "#handover", errors=[str(exc)])
            put_on_form(form, exc)
        else:
            refused, pending = scanning.messages_for(rows)
            return done(url_for("receipts.show", receipt_id=receipt.id) + "#handover", _("Handover confirmed."),
                        warnings=pending, errors=refused)
    return _show(receipt, 422, handover_form=form)


@bp.post("/receipts/<int:receipt_id>/handover/not-applicable")
@staff_required
def not_applicable(receipt_id: int):
    """Staff: no handover applies to this receipt (a course fee, a service), with the reason."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    form = NotApplicableForm(prefix="exempt")
    if form.validate_on_submit():
        try:
            handover.mark_not_applicable(session, current_user, receipt, form.reason.data)
        except ReceiptError as exc:
            if not handover.can_exempt(session, current_user, receipt):
                return done(url_for("receipts.show", receipt_id=receipt.id) + "#handover", errors=[str(exc)])
            put_on_form(form, exc)
        else:
            return done(url_for("receipts.show", receipt_id=receipt.id) + "#handover",
                        _("Handover of %(ref)s marked as not applicable.", ref=receipt.reference))
    return _show(receipt, 422, exempt_form=form)
