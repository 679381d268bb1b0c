"""Partner organisations: a list for staff, create and edit for admins."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import db
from portal.auth.services import admin_required, staff_required
from portal.htmx import render
from portal.orgs import services
from portal.orgs.forms import OrgForm
from portal.rules import put_on_form

bp = Blueprint("orgs", __name__, url_prefix="/organisations")


@bp.get("/")
@staff_required
def index():
    """List the partner organisations."""
    return render("orgs/index.html", orgs=services.all_orgs(db.session()))


def _edit(org):
    form = OrgForm(obj=org)
    if form.validate_on_submit():
        try:
            services.save_org(db.session(), current_user, org, {
                "name": form.name.data, "country": form.country.data,
                "contact_email": form.contact_email.data, "active": form.active.data})
        except services.OrgError as exc:
            put_on_form(form, exc, field="name")
        else:
            flash(_("Organisation saved."), "success")
            return redirect(url_for("orgs.index"), code=303)
    status = 422 if form.errors else 200
    return render("orgs/edit.html", "orgs/_form.html", status, form=form, org=org)


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create():
    """Add a partner organisation."""
    return _edit(None)


@bp.route("/<int:org_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(org_id: int):
    """Change a partner organisation."""
    return _edit(services.get_org(db.session(), org_id))
