"""Feedback persistence: SQLite by default, PostgreSQL in production (same SQLAlchemy Core code).

A feedback POST is written in one transaction: either every entry of it is stored or none is,
so a client that retries after an error never leaves half a batch behind.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from .schemas import FeedbackEntry

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(200), nullable=False, index=True),
    Column("card_uuid", String(200), nullable=False, index=True),
    Column("outcome", String(20), nullable=False),
    Column("accepted_suggestions", Text, nullable=True),  # JSON array of suggestion uuids
    Column("override_system", String(500), nullable=True),
    Column("override_code", String(200), nullable=True),
    Column("override_display", String(500), nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


class StoreUnavailable(Exception):
    """The database cannot be reached; the view answers 503 and the client may retry."""


class FeedbackStore:
    def __init__(self, url: str):
        self.engine: Engine = _engine(url)
        metadata.create_all(self.engine)

    def add(self, service_id: str, entries: list[FeedbackEntry]) -> int:
        now = datetime.now(timezone.utc)
        rows = [
            {
                "service_id": service_id,
                "card_uuid": entry.card,
                "outcome": entry.outcome,
                "accepted_suggestions": (
                    json.dumps([s.id for s in entry.acceptedSuggestions])
                    if entry.acceptedSuggestions
                    else None
                ),
                "override_system": _reason(entry, "system"),
                "override_code": _reason(entry, "code"),
                "override_display": _reason(entry, "display"),
                "user_comment": entry.overrideReason.userComment if entry.overrideReason else None,
                "outcome_timestamp": entry.outcomeTimestamp,
                "received_at": now,
            }
            for entry in entries
        ]
        try:
            with self.engine.begin() as connection:
                connection.execute(feedback.insert(), rows)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return len(rows)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(feedback)).scalar_one()

    def entries(self) -> list[dict]:
        with self.engine.connect() as connection:
            result = connection.execute(select(feedback).order_by(feedback.c.id))
            return [dict(row._mapping) for row in result]

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False


def _reason(entry: FeedbackEntry, attribute: str) -> str | None:
    if entry.overrideReason is None or entry.overrideReason.reason is None:
        return None
    return getattr(entry.overrideReason.reason, attribute)


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # durable and safe for many workers
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
