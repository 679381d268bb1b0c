"""IntegPlan partner portal: create_app() builds config → extensions → blueprints → hooks."""

from __future__ import annotations

from flask import Flask, redirect, url_for
from flask_compress import Compress
from flask_login import current_user

from portal.config import ROOT, load_config
from portal.security import BoundedIntConverter
from portal.static_files import init_static_caching


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.update(load_config())
    app.config.update(overrides or {})
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    app.debug = False  # never the interactive debugger, not even in development
    _trust_proxies(app)

    _init_extensions(app)
    _register_blueprints(app)
    _register_hooks(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES proxies (nginx: 1) take the client address, scheme and host from the
    X-Forwarded-* headers the nearest proxies set, and only from those: a client cannot forge its address
    with a header of its own, because each trusted proxy appends the address it saw to the right."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies)


def _init_extensions(app: Flask) -> None:
    from portal import i18n
    from portal.auth.services import load_user
    from portal.db import init_db
    from portal.extensions import babel, csrf, limiter, login_manager
    from portal.htmx import init_htmx
    from portal.reports import summary
    from portal.schema import import_models
    from portal.storage import init_storage
    from portal.tasks import init_tasks
    from portal.visits import latest

    import_models()  # every feature's tables, before the first session
    init_db(app)
    summary.install()  # the dashboard's summary tables follow every change in the same transaction
    latest.install()  # each case's latest visit (the visits due list) follows every new visit
    init_storage(app)
    init_tasks(app)
    init_htmx(app)
    # Compressed responses (pages, fragments, CSS/JS): partners are on slow links. gzip for static files too.
    app.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["br", "gzip", "deflate"])
    Compress(app)
    init_static_caching(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    i18n.install_jinja(app)  # the templates' _() with the request's translations kept
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    # "basic", not "strong": partners' mobile links change IP address often, and "strong" would sign them
    # out on every change. Stolen cookies are handled by idle/absolute timeouts and server-side session
    # versions ("sign out everywhere").
    login_manager.session_protection = "basic"


def _register_blueprints(app: Flask) -> None:
    from portal.auth.views import bp as auth_bp
    from portal.cases.views import bp as cases_bp
    from portal.health import bp as health_bp
    from portal.ocr.views import bp as ocr_bp
    from portal.orgs.views import bp as orgs_bp
    from portal.receipts.handover_views import bp as handover_bp
    from portal.receipts.views import bp as receipts_bp
    from portal.reports.views import bp as reports_bp
    from portal.review.views import bp as review_bp
    from portal.uploads.views import bp as uploads_bp
    from portal.visits.views import bp as visits_bp
    from portal.workshop.views import bp as workshop_bp

    for bp in (health_bp, auth_bp, orgs_bp, cases_bp, receipts_bp, visits_bp, workshop_bp, review_bp, reports_bp,
               uploads_bp, handover_bp, ocr_bp):
        app.register_blueprint(bp)

    @app.get("/")
    def index():
        """Send people to where their work is."""
        if current_user.is_authenticated:
            return redirect(url_for("cases.index"))
        return redirect(url_for("auth.login"))


def _register_hooks(app: Flask) -> None:
    from flask_babel import format_datetime, get_locale
    from flask_babel import lazy_gettext as _l
    from flask_login import login_url

    from portal import cli, errors, forms, i18n, layout, receipts, scanning
    from portal.extensions import login_manager
    from portal.security import init_security
    from portal.uploads import cli as uploads_cli

    login_manager.login_message = _l("Please sign in to open this page.")
    login_manager.login_message_category = "info"
    init_security(app)
    errors.init_errors(app)
    cli.init_cli(app)
    receipts.init_app(app)
    app.cli.add_command(uploads_cli.uploads_group)
    scanning.init_app(app)
    app.jinja_env.code_generator_class = layout.CodeGenerator  # before the first template is compiled
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    from portal.cases.models import BudgetCategory, CaseStatus, MeasureType

    # Registered once here; each is a cached per-locale lookup, not a dictionary built per call. The value
    # helpers are filters too, for rows in loops: `{{ c.country|country_name }}` is a plain call, while
    # `{{ country_name(c.country) }}` goes through the template context's call machinery (~1 µs more each).
    value_helpers = {
        "case_status_title": CaseStatus.title,
        "measure_title": MeasureType.title,
        "category_title": BudgetCategory.title,
        "money": i18n.money,
        "country_name": i18n.country_name,
        "format_date": i18n.format_date,
    }
    app.jinja_env.filters.update(value_helpers)
    app.jinja_env.globals.update(
        value_helpers,
        percent=i18n.percent,
        dir=i18n.text_direction,
        bdi=i18n.bdi,
        language_names=i18n.LANGUAGE_NAMES,
        login_url=login_url,
        get_locale=get_locale,
        format_datetime=format_datetime,
        drafts_done=forms.drafts_done,
        kept=layout.kept,
        url_pattern=layout.url_pattern,
        cell=layout.cell,
    )
