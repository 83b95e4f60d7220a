"""One database for every part of the store: the engines, the write lock, and the insert helpers
that keep SQLite's multi-row writes fast. SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, event, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from hcc_evidence.errors import HccCdsError

SQLITE_TIMEOUT_S = 10  # how long a write waits for another's
# SQLite, connections that do not wait for the disk: the commit that takes the log past this many
# pages copies it into the database and waits for the disk then (the default, 1,000 pages, made
# that call wait several times longer: bench/README.md).
SQLITE_NO_WAIT_CHECKPOINT_PAGES = 100
CONNECT_TIMEOUT_S = 5  # PostgreSQL, unless the URL sets ?connect_timeout=
STATEMENT_TIMEOUT_MS = 10_000  # PostgreSQL, unless the URL sets ?options=; migrations and reports have none


class StoreUnavailable(HccCdsError):
    """The database cannot be reached; the view answers 503 and the client may retry."""


class Database:
    """The engines the feedback, replay, audit and report stores share.

    ``statement_timeout``: on PostgreSQL, statements are cancelled after ``STATEMENT_TIMEOUT_MS``
    (the service's calls); False for an operator's report over a large audit log."""

    def __init__(self, url: str, *, statement_timeout: bool = True) -> None:
        self.engine: Engine = create_store_engine(url, statement_timeout=statement_timeout)
        # JWT ids are committed without waiting for the disk: see ``JwtReplayStore.first_use``.
        self.replay_engine: Engine = create_store_engine(url, statement_timeout=statement_timeout, wait_for_disk=False)
        self._sqlite_writer = threading.Lock() if self.engine.dialect.name == "sqlite" else None

    @contextmanager
    def writing(self, engine: Engine | None = None) -> Iterator[Connection]:
        """A write transaction on ``engine`` (the durable one unless given); a database error
        becomes ``StoreUnavailable``.

        On SQLite, one at a time in this process. SQLite lets one connection write at a time
        anyway, and the threads it turns away retry after sleeps that grow to 100 ms, so a thread
        can lose to newcomers again and again: at 16 connections, feedback posts and JWT checks
        waited up to a second (bench/README.md). Behind a lock they wait their turn. The wait for the
        lock is bounded like SQLite's own for the database (``SQLITE_TIMEOUT_S``)."""
        lock = self._sqlite_writer
        if lock is not None and not lock.acquire(timeout=SQLITE_TIMEOUT_S):
            raise StoreUnavailable("another write in this process took too long")
        try:
            with (engine or self.engine).begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        finally:
            if lock is not None:
                lock.release()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        """Close every pooled connection (tests and benchmarks that open many stores)."""
        self.engine.dispose()
        self.replay_engine.dispose()


def create_store_engine(url: str, *, statement_timeout: bool = True, wait_for_disk: bool = True) -> Engine:
    """``wait_for_disk=False``: a commit returns before the disk has it (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit=off``), never leaving the database inconsistent; only the
    last moments' commits can be lost, to a crash of the PostgreSQL server or of the host."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # safe for many workers
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={'FULL' if wait_for_disk else 'NORMAL'}")
            if not wait_for_disk:
                cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_NO_WAIT_CHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A database host that drops packets (not refusing them) would hold each feedback POST, /readyz
    # and the audit writer for minutes of TCP retries; libpq gives up after connect_timeout. A
    # database that accepts connections but blocks statements (a lock held elsewhere) would hold
    # them for good: the server cancels a statement after statement_timeout.
    limits: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S}
    options = []
    if statement_timeout:
        options.append(f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
    if not wait_for_disk:
        options.append("-c synchronous_commit=off")
    if options:
        limits["options"] = " ".join(options)
    connect_args = {name: value for name, value in limits.items() if name not in parsed.query}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


def insert_returning_ids(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> Sequence[int]:
    """Insert rows; their ids, in order (see ``_sqlite_insert_rows`` for SQLite).
    PostgreSQL sends RETURNING rows in one reply."""
    if connection.dialect.name == "sqlite":
        last = _sqlite_insert_rows(connection, table, rows)
        return range(last - len(rows) + 1, last + 1)
    return connection.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if connection.dialect.name == "sqlite":
        _sqlite_insert_rows(connection, table, rows)
    else:
        connection.execute(table.insert(), rows)


def _sqlite_insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """One multi-row INSERT on SQLite; the last rowid.

    Each step of a SQLite statement (a RETURNING row, an executemany row) releases and retakes the
    GIL, and in a busy worker each retake waits for a request thread: a 200-row audit
    batch took seconds and kept interrupting the hook calls. One statement is one step. It is
    written as SQL with the columns' own bind processors (dates as SQLAlchemy stores them):
    SQLAlchemy's ``insert().values(rows)`` builds a new statement per batch (costs: bench/README.md).
    The rows of one INSERT get consecutive rowids (each the largest so far plus one, under the
    write lock), so the last one gives them all.
    """
    columns = list(rows[0])
    # The dialect's own type: ``DateTime`` itself has no SQLite processor, and sqlite3 then stored
    # str(datetime) ('… 12:00:00+00:00'), which sorts before SQLAlchemy's '… 12:00:00.000000' in a
    # report's period bounds.
    dialect = connection.dialect
    processors = [table.c[column].type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
    values = [
        process(row[column]) if process else row[column]
        for row in rows
        for column, process in zip(columns, processors, strict=True)
    ]
    placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(rows))}"
    last: int = connection.exec_driver_sql(sql, tuple(values)).lastrowid
    return last


def as_utc(value: datetime) -> datetime:
    """SQLite gives timestamps back naive; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
