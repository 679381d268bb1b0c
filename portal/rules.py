"""The one error a service raises when a rule is broken, and the one way a view puts it on its form.

Features subclass `RuleError` (CaseError, ReceiptError, VisitError, …); the message is for the user, in
their language; `field` names the form field it belongs to (None: the whole form).
"""

from __future__ import annotations


class RuleError(ValueError):
    """A rule was broken; `field` names the form field the message belongs to (None: the whole form)."""

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.field = field


def _add(target, message: str) -> None:
    target.errors = [*target.errors, message]


def put_on_form(form, exc: Exception, default: str | None = None, *, field: str | None = None) -> None:
    """Show `exc` on `form`: on `field` if given ("" for the whole form), else on the field the error
    names (or `default`); on the whole form (form_errors) when the form has no such field."""
    name = field if field is not None else (getattr(exc, "field", None) or default)
    target = getattr(form, name, None) if name else None
    if target is None:
        form.form_errors.append(str(exc))
    else:
        _add(target, str(exc))


def put_problems(form, problems, default: str) -> None:
    """Several (field, message) problems at once; one message per field, the form's own message first."""
    for name, message in problems:
        target = getattr(form, name or default)
        if not target.errors:
            _add(target, message)
