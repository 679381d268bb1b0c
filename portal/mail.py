"""Outgoing mail through an outbox table: a message is stored first, then sent; nothing is lost
when the SMTP server is down, and `flask --app portal mail retry` (or the next send) tries again."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app
from sqlmodel import Field, Session, SQLModel, select

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


def queue(db: Session, to: str, subject: str, body: str) -> OutboxMail:
    """Store a message in the caller's transaction; send it with deliver_pending() after commit."""
    mail = OutboxMail(to=to, subject=subject, body=body)
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
    with smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=cfg["MAIL_TIMEOUT"]) as smtp:
        if cfg["MAIL_USE_TLS"]:
            smtp.starttls()
        if cfg["MAIL_USERNAME"]:
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        smtp.send_message(msg)


def deliver_pending(db: Session, limit: int = 100) -> tuple[int, int]:
    """Try to send every unsent message; returns (sent, still waiting)."""
    pending = db.exec(
        select(OutboxMail).where(OutboxMail.sent_at.is_(None)).order_by(OutboxMail.id).limit(limit)
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
            break  # the server is down: the rest waits for the next try
        mail.sent_at = utcnow()
        mail.last_error = None
        db.commit()
        sent += 1
    waiting = len(db.exec(select(OutboxMail.id).where(OutboxMail.sent_at.is_(None))).all())
    return sent, waiting
