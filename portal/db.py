"""Engine, per-request session and migrations."""

from __future__ import annotations

import time
from contextlib import suppress
from enum import Enum
from pathlib import Path

from flask import current_app, g
from sqlalchemy import Integer, bindparam, event, literal
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5)
    _ping_when_idle(engine)
    _note_writes(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, for connections that sat in the pool for a while: under load a
    connection goes back and forth many times a second, and a ping on every checkout was one more round trip
    to the database on every request. A connection idle longer than PING_AFTER_IDLE_SECONDS (the database
    may have restarted meanwhile) is pinged and replaced if dead, as pool_pre_ping did; a database that goes
    away in the middle of work fails those requests (503) and SQLAlchemy then drops every pooled connection."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means a dead connection, as for pool_pre_ping
            raise DisconnectionError(f"the pooled connection did not answer: {exc}") from exc
        if not alive:
            raise DisconnectionError("the pooled connection did not answer")


def _note_writes(engine: Engine) -> None:
    """Mark a connection's transaction once it sends anything but a query (see _close_session)."""
    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.info["wrote"] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, _cursor, statement, _params, _context, _executemany):
        if not conn.info.get("wrote") and not _reads_only(statement):
            conn.info["wrote"] = True


def _reads_only(statement: str) -> bool:
    head = statement.lstrip()[:6].upper()
    if head == "SELECT":
        return True
    # A WITH may hold an INSERT, UPDATE or DELETE; "FOR UPDATE" counts too (either way: nothing is lost)
    return head.startswith("WITH") and not any(word in statement for word in ("INSERT", "UPDATE", "DELETE"))


def _end_reading(session: Session) -> None:
    """End a request's transaction that only read with COMMIT, not ROLLBACK (the same for such a transaction).
    psycopg forgets every prepared statement of a connection on each ROLLBACK; with the ROLLBACK that ended
    every request, no statement ever reached its fifth use on a connection, and PostgreSQL parsed and planned
    every statement of every request (the review desk's queue: 5-8 ms of planning against 1-2 of running).
    Anything written and not committed (the session's pending objects, or any statement but a query on the
    connection) is still rolled back by close()."""
    transaction = session.get_transaction()
    if transaction is None or not transaction.is_active or session.new or session.dirty or session.deleted:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql" and conn.info.get("wrote") is False:
        session.commit()


def init_db(app) -> None:
    app.extensions["db_engine"] = make_engine(app.config["DATABASE_URL"])

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is None:
            return
        if _exc is None:
            with suppress(SQLAlchemyError):  # a transaction that failed (the database went away): close() ends it
                _end_reading(session)
        try:
            session.close()
        except DBAPIError:
            # the database went away during the request (restart, network): the error page has been
            # sent; drop the dead connection instead of failing the response a second time
            session.invalidate()


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = Session(engine(), expire_on_commit=False)
    return g.db_session


def upsert(db: Session, find, new, values: dict, what: str) -> None:
    """Write `values` into the row find() returns, or into new() and insert it; when another worker inserted
    the same row at that moment (a unique key), theirs is updated instead. For jobs that may run twice."""
    from portal.clock import utcnow

    for _attempt in range(2):
        row = find() or new()
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        db.add(row)
        try:
            db.commit()
            return
        except IntegrityError:
            db.rollback()
    raise RuntimeError(f"{what} not stored")


def literal_param(name: str, type_=Integer):
    """A value given at execution but written into the SQL text (SQLAlchemy's literal_execute), for values
    that take few values: page sizes, offsets, fixed states. psycopg prepares a statement on its fifth use on
    a connection, and PostgreSQL then keeps one generic plan only if it costs no more than the plans made for
    the values. With `LIMIT $1` or `status = $1` it rarely does, and every execution is planned anew: about
    0.3 ms for the case list's page, 5 ms for the desk's queue. Each written value makes its own statement."""
    return bindparam(name, type_=type_, literal_execute=True)


def written(value):
    """A constant of the code (a state, an event's kind) written into the SQL text, not sent as a parameter:
    see literal_param()."""
    return literal(value, literal_execute=True)


def _constant(value) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(_constant(v) for v in value)
    return isinstance(value, Enum)


def constants_written(statement):
    """`statement` with the states it compares with (the enums it was built with) written into its SQL text,
    as written() does, for a statement built once and kept. Values given at execution (named parameters)
    stay parameters, and so do numbers (a number written into an ORDER BY would name a column) and text (a
    search's words are never written into SQL): LIMITs take literal_param() or written()."""
    def write(element):
        if isinstance(element, BindParameter) and element.unique and not element.literal_execute \
                and element.callable is None and _constant(element.value):
            clone = element._clone()
            clone.literal_execute = True
            return clone
        return None

    return replacement_traverse(statement, {}, write)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def reconcile_command(run, fix: bool, matches: str, rewrite: str) -> None:
    """The body of a `… reconcile [--fix]` command for a table kept in step with others: run(conn, fix)
    returns the differences as lines; they are printed, and any left unfixed end the command with exit 1."""
    import click

    with engine().begin() as conn:
        found = run(conn, fix=fix)
    for line in found:
        click.echo(line)
    if not found:
        click.echo(matches)
    elif fix:
        click.echo(f"{len(found)} difference(s) fixed.")
    else:
        raise click.ClickException(f"{len(found)} difference(s); run with --fix to rewrite {rewrite}.")
