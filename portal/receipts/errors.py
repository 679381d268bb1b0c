"""The receipts feature's rule errors: each names the form field its message belongs to."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from portal.cases.models import Case
from portal.receipts.models import (
    Receipt,
)
from portal.rules import RuleError

log = logging.getLogger(__name__)


class ReceiptError(RuleError):
    """A rule was broken; `field` names the form field the message belongs to (None: the whole form)."""


class UploadFailed(ReceiptError):
    """Storage (or the database, after storing) failed: nothing was kept; the user may try again."""


class Conflict(ReceiptError):
    """Someone else changed the receipt since the form was loaded."""


class InFlight(ReceiptError):
    """The same form is being processed by another request right now."""


@dataclass
class DuplicateInvoice(Exception):
    """Receipts with the same supplier and invoice number exist: the user must confirm."""

    matches: list[tuple[Receipt, Case]]
