"""Static files: long-lived caching under content-hashed URLs in production, revalidation otherwise."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
        joined = safe_join(app.static_folder, filename)
        try:
            path = Path(joined) if joined else None
            stat = path.stat() if path else None
        except OSError:
            stat = None
        if path is None or stat is None or not path.is_file():
            return None
        key = (filename, stat.st_mtime_ns, stat.st_size)
        if key not in hashes:
            hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return hashes[key]

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
