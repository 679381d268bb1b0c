"""Outgoing mail through an outbox table: a message is stored in the caller's transaction; once that
commits, the task queue's send_mail(id) job sends it (never the web request). A sender claims the row
first (a conditional UPDATE with a lease), so two workers never send one message twice; a sender that dies
leaves a lease that runs out, and the mail retry job (every minute) or `flask --app portal mail retry`
sends what is still waiting. Nothing is lost when the SMTP server is down."""

from __future__ import annotations

import base64
import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app
from sqlalchemy import JSON, Column, event, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, func, select

from portal.clock import utcnow

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
    # A sender's claim: nobody else sends the message until then (a lease: a sender that died releases it).
    claimed_until: datetime | None = None
    # Set for mails that must exist at most once (a user's digest of one day): a unique marker.
    once_key: str | None = Field(default=None, max_length=120, unique=True, index=True)


def queue(db: Session, to: str, subject: str, body: str,
          attachments: list[tuple[str, str, bytes]] | None = None, once_key: str | None = None) -> OutboxMail:
    """Store a message in the caller's transaction; when it commits, send_mail(id) is put on the task queue.

    attachments: (filename, content type, bytes) tuples. once_key: see already_queued().
    """
    stored = [{"filename": name, "content_type": ctype, "data": base64.b64encode(data).decode("ascii")}
              for name, ctype, data in attachments or ()] or None
    mail = OutboxMail(to=to, subject=subject, body=body, attachments=stored, once_key=once_key)
    db.add(mail)
    return mail


def already_queued(db: Session, once_key: str) -> bool:
    """Whether a mail with this once-key exists (the unique index also refuses a second one in a race)."""
    return db.exec(select(OutboxMail.id).where(OutboxMail.once_key == once_key)).first() is not None


def queue_once(db: Session, once_key: str, to: str, subject: str, body: str) -> bool:
    """Queue and commit a mail that must exist at most once; False if it was queued before (also when a
    concurrent run queued it a moment earlier: the unique once-key refuses the second)."""
    if already_queued(db, once_key):
        return False
    queue(db, to, subject, body, once_key=once_key)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return False
    return True


# Sending after commit: the session remembers the mails it flushed and enqueues them once they are committed.

@event.listens_for(Session, "after_flush")
def _remember_new(session, _flush_context):
    ids = [obj.id for obj in session.new if isinstance(obj, OutboxMail)]
    if ids:
        session.info.setdefault("outbox_new", []).extend(ids)


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session):
    ids = session.info.pop("outbox_new", None)
    if ids:
        from portal import tasks

        for mail_id in ids:
            tasks.enqueue("send_mail", mail_id)  # if the queue is down, the mail retry job sends it


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session):
    session.info.pop("outbox_new", None)


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


CLAIM_SECONDS = 300  # a sender that died mid-way: someone else may try this message after this long
RETRY_AFTER = timedelta(minutes=1)  # the retry job leaves fresh messages to their own send_mail job


def _claim(db: Session, mail_id: int) -> bool:
    """Take the message for sending, in one conditional UPDATE: exactly one of several senders wins."""
    now = utcnow()
    result = db.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id, OutboxMail.sent_at.is_(None), OutboxMail.attempts < MAX_ATTEMPTS,
               or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now))
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=OutboxMail.attempts + 1)
        .execution_options(synchronize_session=False))
    db.commit()
    return result.rowcount == 1


def send_one(db: Session, mail_id: int) -> str:
    """Claim and send one message: "sent", "skipped" (sent already, or someone else is sending it),
    "refused" (the server refused this message) or "failed" (the server cannot be reached; it stays)."""
    if not _claim(db, mail_id):
        return "skipped"
    mail = db.exec(select(OutboxMail).where(OutboxMail.id == mail_id)
                   .execution_options(populate_existing=True)).one()
    try:
        _send(mail)
    except (OSError, smtplib.SMTPException) as exc:
        mail.last_error = str(exc)[:500]
        mail.claimed_until = None
        db.add(mail)
        db.commit()
        log.warning("mail %s not sent: %s", mail.id, exc)
        return "refused" if _refused_for_good(exc) else "failed"
    mail.sent_at = utcnow()
    mail.claimed_until = None
    mail.last_error = None
    db.add(mail)
    db.commit()
    return "sent"


def send_mail(mail_id: int) -> str:
    """The job: send one outbox message (safe to run twice: a sent or claimed message is skipped)."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return send_one(db, mail_id)


def deliver_pending(db: Session, limit: int = 100, older_than: timedelta | None = None) -> tuple[int, int]:
    """Try to send every unsent message (those created at least `older_than` ago); returns (sent, still
    waiting). Stops at the first message the server could not take: the rest waits for the next try."""
    now = utcnow()
    query = (select(OutboxMail.id)
             .where(OutboxMail.sent_at.is_(None), OutboxMail.attempts < MAX_ATTEMPTS,
                    or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now))
             .order_by(OutboxMail.id).limit(limit))
    if older_than is not None:
        query = query.where(OutboxMail.created_at <= now - older_than)
    sent = 0
    for mail_id in db.exec(query).all():
        outcome = send_one(db, mail_id)
        if outcome == "sent":
            sent += 1
        elif outcome == "failed":
            break  # the server is down
    waiting = db.exec(select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))).one()
    return sent, waiting


def retry_mail() -> tuple[int, int]:
    """The periodic job (every minute): send what is still waiting (SMTP was down, a sender died, the queue
    was unreachable when the message was stored)."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        return deliver_pending(db, limit=1000, older_than=RETRY_AFTER)
