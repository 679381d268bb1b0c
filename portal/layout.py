"""Template helpers that make a page cost its content, not its frame: parts of the layout rendered once
and kept, and URL prefixes for lists (registered as Jinja globals by create_app)."""

from __future__ import annotations

from flask import current_app, request, url_for
from markupsafe import Markup

from portal.i18n import locale_name
from portal.security import MAX_ID


def kept(name: str, *key, caller) -> Markup:
    """`{% call kept("head") %}…{% endcall %}`: the block's HTML, rendered on its first use and then kept, per
    app, locale, script root and `key`. Only for parts that depend on nothing else: translated labels, URLs
    of routes and static files (their versions change only with a deployment, which restarts the workers).
    Nothing of the user, the session or the data may go in (the CSRF token, names, counts stay outside)."""
    store = current_app.extensions.setdefault("portal_kept_html", {})
    full_key = (name, locale_name(), request.script_root, *key)
    html = store.get(full_key)
    if html is None:
        html = store[full_key] = Markup(caller())  # noqa: S704 - the block is our own autoescaped template
    return html


def url_prefix(endpoint: str, name: str) -> str:
    """What url_for(endpoint, name=id) writes before the id, for a list of many rows:
    `{% set show = url_prefix('cases.show', 'case_id') %}…{{ show }}{{ c.id }}` builds one URL, not one per
    row (url_for costs more than the rest of a row)."""
    marker = str(MAX_ID)
    url = url_for(endpoint, **{name: MAX_ID})
    if not url.endswith(marker):
        raise ValueError(f"{endpoint}: the {name} is not the end of its URL ({url})")
    return url[: -len(marker)]
