"""Malware scanning of uploaded files through clamd (when CLAMD_HOST is set).

A stored file is "pending" until clamd found it clean; an infected file is moved to a quarantine key,
audited and reported to staff; a scanner that cannot be reached leaves the file pending (never clean),
and `flask --app portal scanning rescan` tries again. Without CLAMD_HOST files are "unscanned" and
behave as before scanning existed.
"""

from __future__ import annotations


def init_app(app) -> None:
    """The scanning CLI group and the template helpers that show a file's scan state."""
    from portal.scanning import services
    from portal.scanning.cli import scanning_group

    app.cli.add_command(scanning_group)
    app.jinja_env.globals.update(scan_state=services.scan_state, file_cleared=services.is_cleared)
