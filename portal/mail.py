"""Outgoing mail through an outbox table: a message is stored first, then sent; nothing is lost
when the SMTP server is down, and `flask --app portal mail retry` (or the next send) tries again."""

from __future__ import annotations

import base64
import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app
from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, func, select

from portal.audit import utcnow

log = logging.getLogger(__name__)


class OutboxMail(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    to: str = Field(max_length=254)
    subject: str = Field(max_length=300)
    body: str
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # [{"filename", "content_type", "data" (base64)}]; None for plain messages.
    attachments: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


def queue(db: Session, to: str, subject: str, body: str,
          attachments: list[tuple[str, str, bytes]] | None = None) -> OutboxMail:
    """Store a message in the caller's transaction; send it with deliver_pending() after commit.

    attachments: (filename, content type, bytes) tuples.
    """
    stored = [{"filename": name, "content_type": ctype, "data": base64.b64encode(data).decode("ascii")}
              for name, ctype, data in attachments or ()] or None
    mail = OutboxMail(to=to, subject=subject, body=body, attachments=stored)
    db.add(mail)
    return mail


def _send(mail: OutboxMail) -> None:
    cfg = current_app.config
    msg = EmailMessage()
    msg["From"] = cfg["MAIL_SENDER"]
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = make_msgid(domain="integplan.portal")
    msg.set_content(mail.body)
    for att in mail.attachments or ():
        maintype, _sep, subtype = att["content_type"].partition("/")
        msg.add_attachment(base64.b64decode(att["data"]), maintype=maintype, subtype=subtype,
                           filename=att["filename"])
    with smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=cfg["MAIL_TIMEOUT"]) as smtp:
        if cfg["MAIL_USE_TLS"]:
            smtp.starttls()
        if cfg["MAIL_USERNAME"]:
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        smtp.send_message(msg)


MAX_ATTEMPTS = 10  # a message the server refuses for good stops being retried after this many tries


def _refused_for_good(exc: Exception) -> bool:
    """The server refused this one message (a bad address, say), not the connection: try the next one."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


def deliver_pending(db: Session, limit: int = 100) -> tuple[int, int]:
    """Try to send every unsent message; returns (sent, still waiting)."""
    pending = db.exec(
        select(OutboxMail).where(OutboxMail.sent_at.is_(None), OutboxMail.attempts < MAX_ATTEMPTS)
        .order_by(OutboxMail.id).limit(limit)
    ).all()
    sent = 0
    for mail in pending:
        mail.attempts += 1
        try:
            _send(mail)
        except (OSError, smtplib.SMTPException) as exc:
            mail.last_error = str(exc)[:500]
            log.warning("mail %s not sent: %s", mail.id, exc)
            db.commit()
            if _refused_for_good(exc):
                continue  # one bad address must not hold up the queue
            break  # the server is down: the rest waits for the next try
        mail.sent_at = utcnow()
        mail.last_error = None
        db.commit()
        sent += 1
    waiting = db.exec(select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))).one()
    return sent, waiting
