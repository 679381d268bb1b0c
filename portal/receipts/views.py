"""Receipts: upload on a case, show, correct, add files, download; staff review queue and exchange rates."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import db
from portal.auth.services import staff_required
from portal.cases.models import BudgetLine, Case
from portal.cases.services import budget_lines, get_case_for
from portal.forms import device_draft_done, device_draft_key
from portal.htmx import done, polled, render
from portal.receipts import checks, decisions, errors, handover, money, neardup, previews, services
from portal.receipts import rates as receipt_rates
from portal.receipts import search as receipt_search
from portal.receipts.forms import AddFilesForm, EditReceiptForm, NewReceiptForm, RateForm, RateImportForm, ReviewForm
from portal.receipts.handover_views import part as handover_part
from portal.rules import put_on_form
from portal.scanning import services as scanning
from portal.security import parse_id
from portal.storage import get_storage
from portal.uploads import services as uploads
from portal.uploads import serving

bp = Blueprint("receipts", __name__)


def _line_choices(form, case: Case) -> None:
    form.budget_line_id.choices = [(0, "—")] + [(line.id, line.description)
                                                for line in budget_lines(db.session(), case)]


def _data(form) -> dict:
    currency = form.currency.data
    return {"budget_line_id": form.budget_line_id.data, "supplier": form.supplier.data.strip(),
            "invoice_number": form.invoice_number.data.strip(), "invoice_date": form.invoice_date.data,
            "amount_minor": money.to_minor(form.amount.data, currency), "currency": currency,
            "description": form.description.data.strip(), "translation": (form.translation.data or "").strip(),
            "paid_directly_confirmed": bool(form.paid_directly.data)}


def _uploads(field_name: str, kind: str, storages) -> list[tuple[str, str, services.Upload]]:
    return [(field_name, kind, services.Upload(f.filename or "", f.stream)) for f in storages or []
            if f and f.filename]


def _claimed_uploads(form, case_id: int) -> tuple[list, bool]:
    """The form's completed uploads (field `uploads`) as files to attach; problems go on the files field."""
    resolved = uploads.resolve(db.session(), current_user, case_id, request.form.getlist("uploads"),
                               ("receipt", "handover"))
    if resolved.problems:
        form.files.errors = [*form.files.errors, *resolved.problems]
    field_of = {"receipt": "files", "handover": "handover"}
    return [(field_of[row.purpose], row.purpose, uploads.adopted(row)) for row in resolved.rows], \
        bool(resolved.problems)


def _upload_cards(case_id: int) -> list:
    """The uploads the form sent, listed again after an error so none is lost."""
    if request.method != "POST":
        return []
    return uploads.listed(db.session(), current_user, case_id, request.form.getlist("uploads"))


@bp.route("/cases/<int:case_id>/receipts/new", methods=["GET", "POST"])
@login_required
def new(case_id: int):
    """Add a receipt with its files to a case."""
    session = db.session()
    case = get_case_for(session, current_user, case_id)
    form = NewReceiptForm()
    _line_choices(form, case)
    if request.method == "GET":
        form.nonce.data = services.new_nonce()
    duplicates = []
    valid = form.validate_on_submit()  # first: validation resets the fields' errors
    claimed, problems = _claimed_uploads(form, case.id) if request.method == "POST" else ([], False)
    files = []
    csrf = getattr(form, "csrf_token", None)
    if form.is_submitted() and not (csrf is not None and csrf.errors):
        # The files are checked even when a field is wrong, so one answer lists every problem.
        try:
            files = services.clean_uploads(_uploads("files", "receipt", form.files.data)
                                           + _uploads("handover", "handover", form.handover.data)) + claimed
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
            valid = False
    if valid and not problems:
        try:
            outcome = services.create_receipt(session, get_storage(), current_user, case, _data(form), files,
                                              form.nonce.data, form.confirm_duplicate.data)
        except errors.DuplicateInvoice as dup:
            duplicates = list(dict.fromkeys(checks.describe_receipt(current_user, r, c) for r, c in dup.matches))
            form.confirm_duplicate.errors = [_("Check the receipts named above, then confirm this is a "
                                               "different purchase")]
        except errors.UploadFailed as exc:
            put_on_form(form, exc)
            form.nonce.data = services.new_nonce()  # nothing was kept: the next try is a new submission
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
        else:
            device_draft_done(device_draft_key("receipt-new", case.id))
            url = url_for("receipts.show", receipt_id=outcome.receipt.id)
            if outcome.replayed:
                return done(url, _("This receipt was already saved."))
            refused, pending = scanning.messages_for(outcome.files)
            return done(url, _("Receipt %(ref)s submitted.", ref=outcome.receipt.reference),
                        warnings=outcome.warnings + pending, errors=refused)
    status = 422 if request.method == "POST" else 200
    return render("receipts/new.html", "receipts/_form.html", status, form=form, case=case, receipt=None,
                  duplicates=duplicates, upload_cards=_upload_cards(case.id),
                  device_draft=device_draft_key("receipt-new", case.id))


def _show(receipt, status: int = 200, review_form=None, files_form=None, problem: str | None = None,
          handover_form=None, exempt_form=None, case=None, line=False, handover_state=None):
    """The receipt page; `case`, `line` (None: no budget line) and `handover_state` when the caller read them
    already."""
    session = db.session()
    case = case or services.case_of(session, receipt)
    if review_form is None:
        review_form = ReviewForm(formdata=None, version=str(receipt.version))
    review_form.version.data = str(receipt.version)
    if line is False:
        line = session.get(BudgetLine, receipt.budget_line_id) if receipt.budget_line_id else None
    files_form = files_form or AddFilesForm(formdata=None)
    if not services.can_edit(current_user, receipt):
        files_form.kind.choices = [c for c in files_form.kind.choices if c[0] == "handover"]
    events = services.history(session, receipt)
    return render("receipts/show.html", "receipts/_receipt.html", status, receipt=receipt, case=case, line=line,
                  files=services.files_of(session, receipt), events=events,
                  review_form=review_form, files_form=files_form,
                  can_edit=services.can_edit(current_user, receipt),
                  can_add_handover=services.can_add_handover(receipt),
                  first_approvals=decisions.first_approvals_in(events, receipt),
                  four_eyes=decisions.needs_four_eyes(receipt),
                  duplicates=checks.invoice_duplicates(session, receipt.supplier, receipt.invoice_number,
                                                         exclude_id=receipt.id) if current_user.is_staff else [],
                  rate_proof=receipt_rates.proofs_for(session, [receipt]).get(receipt.id),
                  near=neardup.visible_matches(session, current_user, receipt, case), problem=problem,
                  upload_cards=[] if handover_form else _upload_cards(case.id),
                  **handover_part(session, current_user, receipt, handover_form, exempt_form, handover_state))


@bp.get("/receipts/<int:receipt_id>")
@login_required
def show(receipt_id: int):
    """Show one receipt: its data, files, status and history."""
    receipt, case, line, state = handover.receipt_with_state(db.session(), current_user, receipt_id)
    return _show(receipt, case=case, line=line, handover_state=state)  # read in one statement


@bp.get("/receipts/<int:receipt_id>/files-list")
@login_required
def files_part(receipt_id: int):
    """The receipt's file list alone: the page asks for it every few seconds while a file is being checked."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    return polled("receipts/_files.html", receipt=receipt, files=services.files_of(session, receipt))


@bp.route("/receipts/<int:receipt_id>/edit", methods=["GET", "POST"])
@login_required
def edit(receipt_id: int):
    """Correct a receipt and submit it again."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    case = services.case_of(session, receipt)
    if not services.can_edit(current_user, receipt):
        flash(_("This receipt cannot be changed any more."), "error")
        return redirect(url_for("receipts.show", receipt_id=receipt.id), code=303)
    if request.method == "GET":
        form = EditReceiptForm(obj=receipt, amount=money.from_minor(receipt.amount_minor, receipt.currency),
                               paid_directly=receipt.paid_directly_confirmed, version=str(receipt.version))
    else:
        form = EditReceiptForm()
    _line_choices(form, case)
    duplicates = []
    if form.validate_on_submit():
        try:
            outcome = services.update_receipt(session, current_user, receipt, _data(form),
                                              int(form.version.data), form.confirm_duplicate.data)
        except errors.DuplicateInvoice as dup:
            duplicates = list(dict.fromkeys(checks.describe_receipt(current_user, r, c) for r, c in dup.matches))
            form.confirm_duplicate.errors = [_("Check the receipts named above, then confirm this is a "
                                               "different purchase")]
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
            if isinstance(exc, errors.Conflict):
                form.version.data = str(receipt.version)
        else:
            device_draft_done(device_draft_key("receipt-edit", receipt.id))
            return done(url_for("receipts.show", receipt_id=receipt.id),
                        _("Receipt %(ref)s submitted again.", ref=receipt.reference), warnings=outcome.warnings)
    status = 422 if request.method == "POST" else 200
    return render("receipts/edit.html", "receipts/_form.html", status, form=form, case=case, receipt=receipt,
                  duplicates=duplicates, device_draft=device_draft_key("receipt-edit", receipt.id))


@bp.post("/receipts/<int:receipt_id>/files")
@login_required
def add_files(receipt_id: int):
    """Attach a handover proof or further receipt files."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    form = AddFilesForm()
    valid = form.validate_on_submit()  # first: validation resets the fields' errors
    claimed, problems = _claimed_uploads(form, receipt.case_id)
    if valid and not problems:
        try:
            files = services.clean_uploads(_uploads("files", form.kind.data, form.files.data)) + claimed
            rows = services.add_files(session, get_storage(), current_user, receipt, form.kind.data, files)
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
        else:
            refused, pending = scanning.messages_for(rows)
            added = _("Files added.") if len(refused) < len(rows) else None
            return done(url_for("receipts.show", receipt_id=receipt.id), added, warnings=pending,
                        errors=refused)
    return _show(receipt, 422, files_form=form)


@bp.get("/receipts/<int:receipt_id>/files/<int:file_id>")
@login_required
def download(receipt_id: int, file_id: int):
    """Download one file as an attachment (never shown inline from the portal's origin)."""
    session = db.session()
    receipt, row = services.get_file_for(session, current_user, receipt_id, file_id)
    return serving.download(session, current_user, row, "receipt_file.downloaded", receipt_id=receipt.id)


@bp.get("/receipts/<int:receipt_id>/files/<int:file_id>/preview")
@login_required
def preview(receipt_id: int, file_id: int):
    """A small JPEG preview of a receipt file (the first page of a PDF)."""
    _receipt, row = services.get_file_for(db.session(), current_user, receipt_id, file_id)
    if not scanning.is_cleared(row):
        return serving.refused(row)
    data = previews.preview(get_storage(), row)
    if data is None:
        abort(404)
    return Response(data, mimetype="image/jpeg", headers={"X-Content-Type-Options": "nosniff"})


@bp.post("/receipts/<int:receipt_id>/review")
@staff_required
def review(receipt_id: int):
    """Approve, reject or send back a receipt."""
    session = db.session()
    receipt = services.get_receipt_for(session, current_user, receipt_id)
    form = ReviewForm()
    if not form.validate_on_submit():
        return _show(receipt, 422, review_form=form)
    try:
        kind = decisions.decide(session, current_user, receipt, form.decision.data, form.comment.data,
                               int(form.version.data))
    except errors.Conflict as exc:
        return _show(receipt, 409, problem=str(exc))
    except errors.ReceiptError as exc:
        put_on_form(form, exc)
        return _show(receipt, 422, review_form=form)
    messages = {
        "approved": _("Receipt %(ref)s approved.", ref=receipt.reference),
        "first_approval": _("Your approval of %(ref)s is recorded. A second staff member must approve it too.",
                            ref=receipt.reference),
        "rejected": _("Receipt %(ref)s rejected.", ref=receipt.reference),
        "correction_requested": _("Correction of %(ref)s requested. The partner sees your comment on the receipt.",
                                  ref=receipt.reference),
    }
    return done(url_for("receipts.show", receipt_id=receipt.id), messages[kind])


@bp.get("/receipts/search")
@login_required
def search():
    """Search the receipts one may see by supplier, invoice number, description and translation."""
    text = request.args.get("q", "")[:200].strip()
    before = parse_id(request.args.get("before"))  # beyond the id columns: the first page, not a 500
    result = receipt_search.search(db.session(), current_user, text, before)
    return render("receipts/search.html", "receipts/_search.html", q=text, result=result,
                  later=before is not None)


@bp.get("/receipts/review")
@staff_required
def queue():
    """The receipts' own queue is the review desk now (filters, sorting, paging): old links lead there."""
    return redirect(url_for("review.index"), code=301)


def _rates_page(status: int = 200, form=None, import_form=None):
    session = db.session()
    currency = request.args.get("currency", "")[:3].upper()
    raw = request.args.get("page", "1")
    rates, page, pages = receipt_rates.list_rates(session, currency,
                                                  int(raw) if raw.isdigit() and len(raw) < 7 else 1)
    return render("receipts/rates.html", "receipts/_rates.html", status,
                  rates=rates, evidence=receipt_rates.evidence_of(session, rates), currency=currency,
                  rate_page=page, rate_pages=pages,
                  form=form or RateForm(formdata=None), import_form=import_form or RateImportForm(formdata=None))


@bp.route("/receipts/rates", methods=["GET", "POST"])
@staff_required
def rates():
    """Monthly exchange rates (units of a currency for 1 EUR), entered by hand with their source reference."""
    if request.method == "GET":
        return _rates_page()
    form = RateForm()
    if form.validate_on_submit():
        try:
            rate = receipt_rates.save_rate(db.session(), current_user, form.currency.data, form.month.data,
                                           form.rate.data, form.source.data, form.source_ref.data)
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
        else:
            return done(url_for("receipts.rates"), _("Rate for %(currency)s saved.", currency=rate.currency))
    return _rates_page(422, form=form)


RATE_FILE_MAX = 2 * 1024 * 1024


@bp.post("/receipts/rates/import")
@staff_required
def import_rates():
    """Import monthly rates from an InforEuro file (XLSX or CSV) or a plain CSV; all lines or none; the file
    is kept as the evidence."""
    form = RateImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        raw = upload.read(RATE_FILE_MAX + 1) if upload else b""
        try:
            if not raw:
                raise errors.ReceiptError(_("Select an XLSX or CSV file"), "file")
            if len(raw) > RATE_FILE_MAX:
                raise errors.ReceiptError(_("The selected file must be smaller than 2 MB"), "file")
            result = receipt_rates.import_rates(db.session(), get_storage(), current_user, raw,
                                                upload.filename or "", form.month.data)
        except errors.ReceiptError as exc:
            put_on_form(form, exc)
        else:
            message = (_("%(count)d rates imported again from a file kept before.", count=result.count)
                       if result.kept_before else _("%(count)d rates imported.", count=result.count))
            return done(url_for("receipts.rates"), message)
    return _rates_page(422, import_form=form)


@bp.get("/receipts/rates/evidence/<int:evidence_id>")
@staff_required
def rate_evidence(evidence_id: int):
    """Download a kept rate file (the evidence of imported rates) as an attachment; staff only, audited."""
    session = db.session()
    row = receipt_rates.get_evidence(session, evidence_id)
    if row is None:
        abort(404)
    return serving.download(session, current_user, row, "rate_evidence.downloaded", evidence_id=row.id)
