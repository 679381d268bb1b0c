"""Every feature's tables, imported together so the metadata is complete (create_app, Alembic, tests).

Apart from portal/db.py on purpose: the database helpers are used by the features, and the features' tables
are listed here, so neither imports the other."""

from __future__ import annotations

from sqlmodel import SQLModel


def import_models() -> type[SQLModel]:
    """Import every feature's tables so the metadata is complete (Alembic, tests)."""
    from portal import audit, mail  # noqa: F401
    from portal.auth import models as _auth  # noqa: F401
    from portal.cases import models as _cases  # noqa: F401
    from portal.notifications import models as _notifications  # noqa: F401
    from portal.ocr import models as _ocr  # noqa: F401
    from portal.orgs import models as _orgs  # noqa: F401
    from portal.receipts import handover as _handover  # noqa: F401
    from portal.receipts import models as _receipts  # noqa: F401
    from portal.review import models as _review  # noqa: F401
    from portal.uploads import models as _uploads  # noqa: F401
    from portal.visits import models as _visits  # noqa: F401
    from portal.workshop import models as _workshop  # noqa: F401

    return SQLModel
