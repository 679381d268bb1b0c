"""Static files: long-lived caching under content-hashed URLs in production, revalidation otherwise."""

from __future__ import annotations

import hashlib
import os
import stat

from flask import Flask, request
from werkzeug.security import safe_join


def init_static_caching(app: Flask) -> None:
    """In production every url_for('static', ...) carries a hash of the file's content (?v=…), and such
    URLs are cached for a year: a slow link fetches CSS/JS once, and a new version has a new URL. Other
    static URLs are revalidated (ETag, 304) instead of fetched again. Registered before the security
    headers' hook so it runs after it (Flask runs after_request hooks in reverse order) and replaces its
    "no-store" for static files. Versioned URLs in production only: in development plain URLs, revalidated."""
    hashes: dict[tuple[str, int, int], str] = {}
    versioned_urls = app.config["PORTAL_ENV"] == "production"

    def content_hash(filename: str) -> str | None:
        # os.stat on the joined path, not pathlib: every page asks for seven static URLs, and building Path
        # objects cost more than the rest of the layout's links. The same checks: a regular file (symlinks
        # followed), its hash kept while its modification time and size stay the same.
        joined = safe_join(app.static_folder, filename)
        if not joined:
            return None
        try:
            found = os.stat(joined)
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        key = (filename, found.st_mtime_ns, found.st_size)
        digest = hashes.get(key)
        if digest is None:
            with open(joined, "rb") as fh:
                digest = hashes[key] = hashlib.sha256(fh.read()).hexdigest()[:12]
        return digest

    @app.url_defaults
    def _static_version(endpoint, values):
        if versioned_urls and endpoint == "static" and "filename" in values and "v" not in values:
            digest = content_hash(values["filename"])
            if digest:
                values["v"] = digest

    @app.after_request
    def _static_cache_control(response):
        if request.endpoint == "static" and response.status_code in (200, 304):
            versioned = request.args.get("v") == content_hash(request.view_args.get("filename", ""))
            response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if versioned
                                                 else "no-cache")
        return response
