"""Workshop pages: staff set-up and participant management; the public registration and self-service."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, current_app, flash, make_response, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from portal import db
from portal.auth.services import staff_required
from portal.config import LANGUAGES
from portal.extensions import limiter
from portal.htmx import render
from portal.i18n import is_country
from portal.rules import put_on_form
from portal.workshop import pdf, services
from portal.workshop.forms import (
    OTHER_LANGUAGES,
    ConfirmForm,
    ManageForm,
    MoveForm,
    RegistrationForm,
    ResendForm,
    StaffRegistrationForm,
    WithdrawForm,
    WorkshopForm,
)
from portal.workshop.models import RegRole, RegStatus

bp = Blueprint("workshop", __name__, url_prefix="/workshops")


def _public_limit() -> str:
    return current_app.config["WORKSHOP_RATE_LIMIT"]


def _labels_ctx() -> dict:
    return {"status_labels": RegStatus.titles(), "role_labels": RegRole.titles()}


# Staff: workshops -------------------------------------------------------------------------------

@bp.get("/")
@staff_required
def index():
    """List the workshops with their counts."""
    return render("workshop/index.html", workshops=services.list_workshops(db.session()), **_labels_ctx())


def _workshop_data(form: WorkshopForm) -> dict:
    translations = {}
    for code in OTHER_LANGUAGES:
        title, description = form[f"title_{code}"].data, form[f"description_{code}"].data
        if title or description:
            translations[code] = {"title": title or "", "description": description or ""}
    return {"title": form.title.data, "description": form.description.data or "",
            "translations": translations or None, "starts_on": form.starts_on.data, "ends_on": form.ends_on.data,
            "city": form.city.data, "venue": form.venue.data, "capacity": form.capacity.data,
            "registration_deadline": form.registration_deadline.data,
            "working_languages": form.working_languages.data or "", "travel_support": form.travel_support.data,
            "visa_letters": form.visa_letters.data, "moderated": form.moderated.data}


def _workshop_form(workshop=None):
    form = WorkshopForm(obj=workshop)
    if request.method == "GET" and workshop is not None:
        for code, texts in (workshop.translations or {}).items():
            if code in OTHER_LANGUAGES:
                form[f"title_{code}"].data = texts.get("title", "")
                form[f"description_{code}"].data = texts.get("description", "")
    if form.validate_on_submit():
        try:
            if workshop is None:
                workshop = services.create_workshop(db.session(), current_user, _workshop_data(form))
            else:
                services.update_workshop(db.session(), current_user, workshop, _workshop_data(form))
        except services.WorkshopError as exc:
            put_on_form(form, exc, "title")
        else:
            flash(_("Workshop saved."), "success")
            return redirect(url_for("workshop.show", workshop_id=workshop.id), code=303)
    status = 422 if form.errors else 200
    return render("workshop/edit.html", "workshop/_form.html", status, form=form, workshop=workshop,
                  other_languages=OTHER_LANGUAGES)


@bp.route("/new", methods=["GET", "POST"])
@staff_required
def create():
    """Set up a new workshop."""
    return _workshop_form()


@bp.route("/<int:workshop_id>/edit", methods=["GET", "POST"])
@staff_required
def edit(workshop_id: int):
    """Change a workshop's details."""
    return _workshop_form(services.get_workshop(db.session(), workshop_id))


def _filter() -> services.RegFilter:
    args = request.args
    return services.RegFilter(status=args.get("status", "")[:16], country=args.get("country", "")[:2],
                              role=args.get("role", "")[:20], needs=args.get("needs", "")[:16])


@bp.get("/<int:workshop_id>")
@staff_required
def show(workshop_id: int):
    """The participant list with filters and the counts against capacity."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    f = _filter()
    raw = request.args.get("page", "1")
    known = services.overview(session, workshop)
    result = services.registration_page(session, workshop, f, int(raw) if raw.isdigit() and len(raw) < 7 else 1,
                                        known=known)
    return render("workshop/show.html", "workshop/_list.html", workshop=workshop, f=f, result=result,
                  registrations=result.rows, counts=known.counts, countries=known.countries,
                  stats=services.stats(session, workshop),
                  public_url=current_app.config["BASE_URL"].rstrip("/") + url_for("workshop.register", token=workshop.public_key),
                  **_labels_ctx())


def _export(workshop_id: int):
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    labels = {"status": _("Status"), "name": _("Full name"), "email": _("Email"), "organisation": _("Organisation"),
              "country": _("Country"), "role": _("Role"), "languages": _("Languages you speak"),
              "dietary_needs": _("Dietary needs"), "accessibility_needs": _("Accessibility needs"),
              "travel_support": _("Travel support"), "visa_letter": _("Visa invitation letter"),
              "consent_list": _("On the participant list"), "created_at": _("Registered"),
              "yes": _("yes"), "no": _("no"), "statuses": RegStatus.titles(), "roles": RegRole.titles()}
    header, rows = services.export_rows(services.list_registrations(session, workshop, _filter()), labels)
    return workshop, header, rows


def _download(data: bytes, mimetype: str, filename: str) -> Response:
    resp = Response(data, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/<int:workshop_id>/participants.csv")
@staff_required
def export_csv(workshop_id: int):
    """The (filtered) participant list as CSV."""
    workshop, header, rows = _export(workshop_id)
    return _download(services.to_csv(header, rows), "text/csv", f"workshop-{workshop.id}-participants.csv")


@bp.get("/<int:workshop_id>/participants.xlsx")
@staff_required
def export_xlsx(workshop_id: int):
    """The (filtered) participant list as an Excel workbook."""
    workshop, header, rows = _export(workshop_id)
    return _download(services.to_xlsx(header, rows, _("Participants")),
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     f"workshop-{workshop.id}-participants.xlsx")


@bp.get("/<int:workshop_id>/badges.pdf")
@staff_required
def badges(workshop_id: int):
    """Printable name badges for the confirmed participants."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    regs = services.list_registrations(session, workshop, services.RegFilter(status=RegStatus.CONFIRMED))
    return _download(pdf.badges(workshop, regs), "application/pdf", f"workshop-{workshop.id}-badges.pdf")


@bp.route("/<int:workshop_id>/registrations/new", methods=["GET", "POST"])
@staff_required
def add_registration(workshop_id: int):
    """Add a registration by hand (no opt-in; a seat or the waitlist)."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    form = StaffRegistrationForm(workshop=workshop)
    if form.validate_on_submit():
        try:
            services.staff_add(session, current_user, workshop, form.data_for_service(), form.locale.data)
        except services.WorkshopError as exc:
            put_on_form(form, exc, "email")
        else:
            flash(_("Registration added."), "success")
            return redirect(url_for("workshop.show", workshop_id=workshop.id), code=303)
    status = 422 if form.errors else 200
    return render("workshop/add.html", "workshop/_register_form.html", status, form=form, workshop=workshop,
                  action=url_for("workshop.add_registration", workshop_id=workshop.id), staff=True)


@bp.get("/<int:workshop_id>/registrations/<int:registration_id>")
@staff_required
def registration(workshop_id: int, registration_id: int):
    """One registration with its passport data (staff only) and the status change."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    reg = services.get_registration(session, workshop, registration_id)
    return render("workshop/registration.html", workshop=workshop, reg=reg,
                  form=MoveForm(formdata=None), **_labels_ctx())


@bp.post("/<int:workshop_id>/registrations/<int:registration_id>/status")
@staff_required
def move(workshop_id: int, registration_id: int):
    """Move a registration to another status (approve, waitlist, decline with a message, withdraw)."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    reg = services.get_registration(session, workshop, registration_id)
    form = MoveForm()
    if form.validate_on_submit():
        try:
            services.move(session, current_user, reg, form.status.data, form.message.data or "")
        except services.WorkshopError as exc:
            session.rollback()
            put_on_form(form, exc, field="status")
        else:
            flash(_("Status changed."), "success")
            return redirect(url_for("workshop.registration", workshop_id=workshop.id, registration_id=reg.id),
                            code=303)
    return render("workshop/registration.html", status=422, workshop=workshop, reg=reg,
                  form=form, **_labels_ctx())


@bp.get("/<int:workshop_id>/registrations/<int:registration_id>/visa-letter.pdf")
@staff_required
def visa_letter(workshop_id: int, registration_id: int):
    """The visa invitation letter (English or German) for a confirmed registrant who asked for one."""
    session = db.session()
    workshop = services.get_workshop(session, workshop_id)
    reg = services.get_registration(session, workshop, registration_id)
    if reg.status != RegStatus.CONFIRMED or not reg.visa_letter or not reg.passport_name:
        abort(404)
    lang = request.args.get("lang", "en")
    data = pdf.visa_letter(workshop, reg, lang if lang in ("en", "de") else "en", signer=current_user.name)
    return _download(data, "application/pdf", f"visa-letter-{reg.id}-{lang if lang in ('en', 'de') else 'en'}.pdf")


# Public: registration and self-service ----------------------------------------------------------

def _locale() -> str:
    code = str(get_locale())
    return code if code in LANGUAGES else current_app.config["BABEL_DEFAULT_LOCALE"]


def _public_ctx(workshop) -> dict:
    title, description = services.text_for(workshop, _locale())
    return {"workshop": workshop, "title": title, "description": description,
            "is_open": services.is_open(workshop)}


@bp.route("/join/<token>", methods=["GET", "POST"])
@limiter.limit(_public_limit, methods=["POST"])
def register(token: str):
    """The public registration form, in the visitor's language, without an account."""
    session = db.session()
    workshop = services.get_public_workshop(session, token)
    form = RegistrationForm(workshop=workshop)
    if request.method == "POST" and services.is_open(workshop) and form.validate_on_submit():
        if form.website.data:  # the honeypot: answer like a success, store nothing
            return redirect(url_for("workshop.sent", token=token), code=303)
        if not is_country(form.country.data):
            form.country.errors.append(_("Choose the country where you work."))
        else:
            try:
                services.register(session, workshop, form.data_for_service(), _locale())
            except services.Duplicate as exc:
                # The same answer as a new registration: the address's owner gets the link by e-mail,
                # and nobody learns from the page that this address is registered.
                services.resend_link(session, exc.registration)
                return redirect(url_for("workshop.sent", token=token), code=303)
            except services.WorkshopError as exc:
                put_on_form(form, exc, field="")
            else:
                return redirect(url_for("workshop.sent", token=token), code=303)
    status = 422 if form.errors else 200
    return render("workshop/register.html", "workshop/_register_form.html", status, form=form,
                  action=url_for("workshop.register", token=token), staff=False, **_public_ctx(workshop))


@bp.get("/join/<token>/sent")
def sent(token: str):
    """After registering: check your e-mail."""
    workshop = services.get_public_workshop(db.session(), token)
    return render("workshop/sent.html", **_public_ctx(workshop))


@bp.post("/join/<token>/resend")
@limiter.limit(_public_limit)
def resend(token: str):
    """Send the confirmation (or self-service) link again to an address already registered."""
    session = db.session()
    workshop = services.get_public_workshop(session, token)
    form = ResendForm()
    if form.validate_on_submit():
        reg = services.find_registration(session, workshop, form.email.data)
        if reg is not None:
            services.resend_link(session, reg)
    # The same answer whether or not the address is registered.
    return redirect(url_for("workshop.sent", token=token), code=303)


def _private(result) -> Response:
    """A page reached through a personal link shows personal data: no browser or proxy keeps a copy."""
    response = make_response(result)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@limiter.limit(_public_limit, methods=["POST"])
def confirm(token: str):
    """The link from the confirmation e-mail: a button confirms (no change on GET, for mail scanners)."""
    session = db.session()
    reg = services.registration_from_token(session, token, services.CONFIRM)
    workshop = services.get_workshop(session, reg.workshop_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        services.confirm_email(session, reg)
        return redirect(url_for("workshop.manage", token=services.make_token(reg, services.MANAGE)), code=303)
    return _private(render("workshop/confirm.html", form=form, reg=reg,
                           **_public_ctx(workshop), **_labels_ctx()))


@bp.route("/my/<token>", methods=["GET", "POST"])
@limiter.limit(_public_limit, methods=["POST"])
def manage(token: str):
    """Self-service: see, change or withdraw the registration through the signed link."""
    session = db.session()
    reg = services.registration_from_token(session, token, services.MANAGE)
    workshop = services.get_workshop(session, reg.workshop_id)
    form = ManageForm(obj=reg, workshop=workshop)
    closed = reg.status in (RegStatus.WITHDRAWN, RegStatus.DECLINED) or workshop.ends_on < date.today()
    if request.method == "POST" and not closed and form.validate_on_submit():
        if not is_country(form.country.data):
            form.country.errors.append(_("Choose the country where you work."))
        else:
            services.update_registration(session, reg, {k: f.data for k, f in form._fields.items()
                                                       if k not in ("csrf_token", "submit")})
            flash(_("Your changes are saved."), "success")
            return redirect(url_for("workshop.manage", token=token), code=303)
    status = 422 if form.errors else 200
    return _private(render("workshop/manage.html", status=status, form=form, reg=reg, token=token,
                           withdraw_form=WithdrawForm(formdata=None), today=date.today(), **_public_ctx(workshop),
                           **_labels_ctx()))


@bp.post("/my/<token>/withdraw")
@limiter.limit(_public_limit)
def withdraw(token: str):
    """Withdraw the registration; a freed seat goes to the first on the waitlist."""
    session = db.session()
    reg = services.registration_from_token(session, token, services.MANAGE)
    if WithdrawForm().validate_on_submit():
        services.withdraw(session, reg)
        flash(_("Your registration is withdrawn."), "success")
    return redirect(url_for("workshop.manage", token=token), code=303)


@bp.get("/privacy")
def privacy():
    """The privacy notice the registration form links to."""
    return render("workshop/privacy.html", "workshop/privacy.html")
