"""Feedback and audit persistence: SQLite by default, PostgreSQL in production (same SQLAlchemy Core).

Feedback is stored only for cards the audit log shows this service issued. The entries of a POST
that are stored are written in one transaction; an entry the store already holds (a client's
retry) is reported as a duplicate, not stored twice, and one contradicting what is stored (the
same card accepted and overridden) is refused. Each assessment the
pipeline makes is recorded in an audit log that carries ids, codes and timings, never PHI: no
names, no clinical values. The schema is managed by Alembic (``cds_service/migrations``), applied
at start-up or by ``python -m cds_service migrate``.
"""

from __future__ import annotations

import json
import threading
import time as time_
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    create_engine,
    distinct,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
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
    Index("uq_feedback_entry", "service_id", "card_uuid", "outcome", "outcome_timestamp", unique=True),
)

assessment_audit = Table(
    "assessment_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_instance", String(36), nullable=False, index=True),
    Column("service_id", String(200), nullable=False),
    Column("hook", String(100), nullable=False),
    Column("model_version", String(100), nullable=True),
    Column("outcome", String(20), nullable=False),
    Column("timing_ms", Float, nullable=False),
    Column("missing_data", Text, nullable=False),  # JSON array of prefetch/feature keys
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("audit_id", String(36), nullable=True),  # NULL on rows written before revision 0004
    Index("uq_assessment_audit_audit_id", "audit_id", unique=True),
)

assessment_card = Table(
    "assessment_card",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "assessment_id",
        Integer,
        ForeignKey("assessment_audit.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("card_uuid", String(200), nullable=False, index=True),
    Column("indicator", String(20), nullable=False),
    Column("kind", String(100), nullable=True),
    # JSON array of the card's suggestion uuids ("[]": none); NULL on rows written before revision 0005
    Column("suggestion_uuids", Text, nullable=True),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("issuer", String(500), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
)

MIGRATIONS = "cds_service:migrations"
MIGRATION_LOCK_KEY = 7_431_195_203  # PostgreSQL advisory lock: any constant the same for every replica
SQLITE_TIMEOUT_S = 10  # how long a write waits for another's
JTI_PURGE_INTERVAL_S = 60.0  # expired JWT ids are deleted at most this often per process
# SQLite, connections that do not wait for the disk: the commit that takes the log past this many
# pages copies it into the database and waits for the disk then (default 1,000 pages: that call
# waited 15-20 ms; at 100, ~3 ms).
SQLITE_NO_WAIT_CHECKPOINT_PAGES = 100
CONNECT_TIMEOUT_S = 5  # PostgreSQL, unless the URL sets ?connect_timeout=
STATEMENT_TIMEOUT_MS = 10_000  # PostgreSQL, unless the URL sets ?options=; migrations and reports have none

# Ids and codes only: a pattern that no sentence, name or decimal value with units gets through.
AuditKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/|+-]{1,100}$")]


class StoreUnavailable(Exception):
    """The database cannot be reached; the view answers 503 and the client may retry."""


class SchemaOutdated(Exception):
    """The database schema is not at the revision this code needs (run ``python -m cds_service migrate``)."""


class AuditCard(BaseModel):
    """One card the assessment returned: its uuid (the key feedback refers to) and what it was."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    indicator: Literal["info", "warning", "critical"]
    kind: AuditKey | None = Field(
        None, description="Stable label of the card type (e.g. 'sorafenib-resistance'), for per-card rates."
    )
    suggestions: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")], ...] = Field(
        (), description="The uuids of the card's suggestions: the ids an 'accepted' feedback may name."
    )


class AssessmentAudit(BaseModel):
    """What governance may see of one hook call: ids, codes, timings; no PHI beyond ids."""

    model_config = ConfigDict(extra="forbid")

    audit_id: UUID | None = Field(
        default_factory=uuid4,
        description="This row's own key, drawn when the call is answered: a write tried again after "
        "an unacknowledged commit skips the rows it finds already stored (None on rows older than it).",
    )
    hook_instance: UUID
    service_id: AuditKey
    hook: AuditKey
    model_version: AuditKey | None = None
    outcome: Literal["cards", "no_cards", "fast_path", "error"]
    timing_ms: float = Field(ge=0)
    cards: list[AuditCard] = Field(default_factory=list)
    missing_data: list[AuditKey] = Field(
        default_factory=list, description="Keys of the data that were missing (e.g. 'labs', 'afp'), never values."
    )
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("recorded_at")
    @classmethod
    def _has_timezone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("recorded_at must carry a timezone")
        return value

    @property
    def card_uuids(self) -> list[str]:
        return [card.uuid for card in self.cards]

    @property
    def indicators(self) -> list[str]:
        return [card.indicator for card in self.cards]


class FeedbackResult(BaseModel):
    """What became of one entry of a feedback POST: stored now, stored already (a retry), or
    refused with the reason (``error``: a code; ``problem``: a sentence)."""

    card: str
    status: Literal["stored", "duplicate", "refused"]
    error: Literal["unknown_card", "unknown_suggestion", "outcome_conflict", "feedback_conflict"] | None = None
    problem: str | None = None


class _FeedbackShares(BaseModel):
    """Acceptance and override rates of ``cards`` shown (0 when none was shown)."""

    accepted: int
    overridden: int

    @property
    def cards(self) -> int:
        raise NotImplementedError

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.cards if self.cards else 0.0

    @property
    def override_rate(self) -> float:
        return self.overridden / self.cards if self.cards else 0.0


class CardFeedbackRate(_FeedbackShares):
    service_id: str
    kind: str | None
    indicator: str
    shown: int
    accepted: int
    overridden: int

    @property
    def cards(self) -> int:
        return self.shown


class OverrideReasonCount(BaseModel):
    kind: str | None
    reason_code: str | None
    reason_display: str | None
    count: int


class Timing(BaseModel):
    count: int
    p50_ms: float
    p95_ms: float


class ModelVersionFigures(_FeedbackShares):
    """One model version's assessments, timing and feedback: to compare a version with the last."""

    assessments: int
    by_outcome: dict[str, int]
    timing: Timing
    cards_shown: int
    accepted: int
    overridden: int

    @property
    def cards(self) -> int:
        return self.cards_shown


UNKNOWN_MODEL_VERSION = "(unknown)"  # the key of rows that carry no model version


class AuditReport(BaseModel):
    since: datetime | None
    until: datetime | None = None  # exclusive
    assessments: int
    by_service_outcome: dict[str, dict[str, int]]  # service id → outcome → count
    cards_by_indicator: dict[str, int]
    timing: dict[str, Timing]  # service id → timing; "*" = all services
    missing_data: dict[str, int]  # data item → assessments it was missing from, most often first
    card_feedback: list[CardFeedbackRate]
    override_reasons: list[OverrideReasonCount]
    by_model_version: dict[str, ModelVersionFigures] | None = None  # when asked for


SchemaStep = Literal["migrate", "check", "as-is"]


class FeedbackStore:
    def __init__(self, url: str, *, schema: SchemaStep = "migrate", statement_timeout: bool = True):
        """``schema``: bring the database schema to head, check that it is there (SchemaOutdated if
        not), or take it as it is where the caller has done either already. A gunicorn worker takes
        it as is (its master prepared it once, before forking) and so boots without the database:
        one replaced during a database outage starts and answers hooks.

        ``statement_timeout``: on PostgreSQL, statements are cancelled after
        ``STATEMENT_TIMEOUT_MS`` (the service's calls); False for an operator's report over a
        large audit log."""
        self.engine: Engine = _engine(url, statement_timeout=statement_timeout)
        # JWT ids are committed without waiting for the disk: see ``first_use``.
        self.replay_engine: Engine = _engine(url, statement_timeout=statement_timeout, wait_for_disk=False)
        self._sqlite_writer = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._next_jti_purge = 0.0  # time.time() after which first_use deletes expired ids
        if schema != "as-is":
            prepare_schema(self.engine, migrate_schema=schema == "migrate")

    @contextmanager
    def _writing(self, engine: Engine | None = None) -> Iterator[Connection]:
        """A write transaction on ``engine`` (the durable one unless given); a database error
        becomes ``StoreUnavailable``.

        On SQLite, one at a time in this process. SQLite lets one connection write at a time
        anyway, and the threads it turns away retry after sleeps that grow to 100 ms, so a thread
        can lose to newcomers again and again: at 16 connections, feedback posts and JWT checks
        waited up to a second (p99 1.0 s). Behind a lock they wait their turn. The wait for the
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

    # -- JWT replay protection ---------------------------------------------------------------

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record a JWT id; False if any worker or replica has already seen it (a replay).
        The primary key makes the check and the insert one atomic step in either database: the
        statement inserts the id, or takes over its row once that has expired, or does nothing.
        So expired rows need deleting only to keep the table small, not on every call (that
        was a second statement in every JWT-checked call).

        The commit does not wait for the disk (``replay_engine``): waiting was half of a
        JWT-checked call's time on SQLite. A worker or service crash loses nothing; a crash of
        the PostgreSQL server, or a power cut or operating-system crash, can forget the ids of
        the last moments, and a token among them could then be replayed until it expires
        (minutes; it is bound to this endpoint's URL). Feedback and audit rows still wait."""
        now = time_.time()
        with self._writing(self.replay_engine) as connection:
            if now >= self._next_jti_purge:
                connection.execute(_PURGE_EXPIRED_JTI, {"now": now})
                self._next_jti_purge = now + JTI_PURGE_INTERVAL_S
            recorded = connection.execute(
                _record_jti(connection.dialect.name),
                {"issuer": issuer[:500], "jti": jti[:200], "expires_at": expires_at, "now": now},
            )
            # A row back means recorded. Not rowcount: psycopg reports -1 for this statement,
            # which refused every token as a replay on PostgreSQL.
            return recorded.first() is not None

    # -- feedback ---------------------------------------------------------------------------

    def add(self, service_id: str, entries: list[FeedbackEntry]) -> list[FeedbackResult]:
        """Judge each entry of a feedback POST against the audit log and the feedback stored, and
        store those found new, in one transaction. One result per entry, in order:

        - refused ``unknown_card``: the audit shows no card with that uuid issued by this service;
        - refused ``unknown_suggestion``: an accepted id is not among the card's suggestions (known
          for cards audited since revision 0005; older cards' suggestions are taken on trust);
        - ``duplicate``: the same card, outcome and time is stored already with the same details;
          refused ``feedback_conflict`` if its details differ;
        - refused ``outcome_conflict``: the card is stored with the other outcome. "Typically, an
          end user may only accept (a suggestion), or override a card once" (CDS Hooks 2.0): more
          reports of the same outcome are stored (another suggestion accepted later), but a card
          both accepted and overridden would count in both rates;
        - ``stored``.

        The issued cards are locked for the transaction (PostgreSQL ``FOR UPDATE``; SQLite takes
        its write lock first), so two concurrent POSTs about one card are judged one after the
        other. Raises ``StoreUnavailable``."""
        now = datetime.now(UTC)
        rows = [_feedback_row(service_id, entry, now) for entry in entries]
        cards = sorted({row["card_uuid"] for row in rows})
        with self._writing() as connection:
            if connection.dialect.name == "sqlite":
                # Without it the reads below would not hold off another process's write.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            issued = _issued_cards(connection, service_id, cards)
            stored = _stored_feedback(connection, service_id, cards)
            results = [_judge(service_id, row, issued, stored) for row in rows]
            new = [row for row, result in zip(rows, results, strict=True) if result.status == "stored"]
            if new:
                connection.execute(feedback.insert(), new)
        return results

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(feedback)).scalar_one()

    def entries(self) -> list[dict]:
        with self.engine.connect() as connection:
            result = connection.execute(select(feedback).order_by(feedback.c.id))
            return [dict(row._mapping) for row in result]

    # -- audit ------------------------------------------------------------------------------

    def record_assessment(self, record: AssessmentAudit) -> None:
        """Append one assessment to the audit log. Raises ``StoreUnavailable``."""
        self.record_assessments([record])

    def record_assessments(self, records: Sequence[AssessmentAudit]) -> None:
        """Append assessments to the audit log in one transaction: all of them or none (a commit
        costs milliseconds on SQLite, so the audit writer batches). Per 500 rows, a look-up of
        their keys and, on SQLite, two multi-row statements (see ``_sqlite_insert_rows``).
        Raises ``StoreUnavailable``.

        Idempotent: rows whose ``audit_id`` is stored already are skipped. A commit whose
        acknowledgement is lost looks like an outage, and the writer sends that batch again."""
        if not records:
            return
        with self._writing() as connection:
            for start in range(0, len(records), _ROWS_PER_STATEMENT):
                chunk = _not_stored_yet(connection, records[start : start + _ROWS_PER_STATEMENT])
                if not chunk:
                    continue
                ids = _insert_returning_ids(connection, assessment_audit, [_audit_row(record) for record in chunk])
                cards = [
                    {
                        "assessment_id": assessment_id,
                        "card_uuid": card.uuid,
                        "indicator": card.indicator,
                        "kind": card.kind,
                        "suggestion_uuids": json.dumps(card.suggestions),
                    }
                    for assessment_id, record in zip(ids, chunk, strict=True)
                    for card in record.cards
                ]
                if cards:
                    _insert_rows(connection, assessment_card, cards)

    def assessments(self, since: datetime | None = None) -> list[AssessmentAudit]:
        with self.engine.connect() as connection:
            audits = connection.execute(
                select(assessment_audit).where(_period(since, None)).order_by(assessment_audit.c.id)
            ).all()
            cards: dict[int, list[AuditCard]] = {}
            for row in connection.execute(
                select(assessment_card)
                .join(assessment_audit, assessment_card.c.assessment_id == assessment_audit.c.id)
                .where(_period(since, None))
                .order_by(assessment_card.c.id)
            ):
                cards.setdefault(row.assessment_id, []).append(
                    AuditCard(
                        uuid=row.card_uuid,
                        indicator=row.indicator,
                        kind=row.kind,
                        suggestions=json.loads(row.suggestion_uuids or "[]"),
                    )
                )
        return [
            AssessmentAudit(
                audit_id=row.audit_id,
                hook_instance=row.hook_instance,
                service_id=row.service_id,
                hook=row.hook,
                model_version=row.model_version,
                outcome=row.outcome,
                timing_ms=row.timing_ms,
                cards=cards.get(row.id, []),
                missing_data=json.loads(row.missing_data),
                recorded_at=_utc(row.recorded_at),
            )
            for row in audits
        ]

    def audit_report(
        self,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        *,
        by_model_version: bool = False,
    ) -> AuditReport:
        """Counts, timings, missing data and feedback rates for governance, of the assessments
        recorded from ``since`` up to, not including, ``until`` (UTC; a date is its midnight).
        ``by_model_version``: the same figures per model version as well, to compare a version
        rolled out with the one before."""
        since, until = _as_utc(since), _as_utc(until)
        audit, card, fb = assessment_audit, assessment_card, feedback
        in_period = _period(since, until)
        with self.engine.connect() as connection:
            by_service_outcome: dict[str, dict[str, int]] = {}
            for service_id, outcome, n in connection.execute(
                select(audit.c.service_id, audit.c.outcome, func.count())
                .where(in_period)
                .group_by(audit.c.service_id, audit.c.outcome)
                .order_by(audit.c.service_id, audit.c.outcome)
            ):
                by_service_outcome.setdefault(service_id, {})[outcome] = n

            cards_by_indicator = dict(
                connection.execute(
                    select(card.c.indicator, func.count())
                    .join(audit, card.c.assessment_id == audit.c.id)
                    .where(in_period)
                    .group_by(card.c.indicator)
                    .order_by(card.c.indicator)
                ).all()
            )

            timings: dict[str, list[float]] = {"*": []}
            version_timings: dict[str, list[float]] = {}
            missing: dict[str, int] = {}
            for service_id, version, timing_ms, missing_data in connection.execute(
                select(audit.c.service_id, audit.c.model_version, audit.c.timing_ms, audit.c.missing_data).where(
                    in_period
                )
            ):
                timings.setdefault(service_id, []).append(timing_ms)
                timings["*"].append(timing_ms)
                version_timings.setdefault(version or UNKNOWN_MODEL_VERSION, []).append(timing_ms)
                for item in set(json.loads(missing_data)):
                    missing[item] = missing.get(item, 0) + 1

            by_kind = (audit.c.service_id, card.c.kind, card.c.indicator)
            rates = connection.execute(_card_feedback(in_period, *by_kind).order_by(*by_kind)).all()

            # Cards, not rows: a card audited twice (a retried hook call) or overridden twice counts once.
            overridden_cards = func.count(distinct(card.c.card_uuid))
            reasons = connection.execute(
                select(card.c.kind, fb.c.override_code, fb.c.override_display, overridden_cards)
                .select_from(card.join(audit, card.c.assessment_id == audit.c.id))
                .join(fb, and_(fb.c.card_uuid == card.c.card_uuid, fb.c.service_id == audit.c.service_id))
                .where(in_period, fb.c.outcome == "overridden")
                .group_by(card.c.kind, fb.c.override_code, fb.c.override_display)
                .order_by(overridden_cards.desc(), card.c.kind, fb.c.override_code)
            ).all()

            versions = None
            if by_model_version:
                versions = _model_version_figures(connection, in_period, version_timings)

        return AuditReport(
            since=since,
            until=until,
            assessments=len(timings["*"]),
            by_service_outcome=by_service_outcome,
            cards_by_indicator=cards_by_indicator,
            timing={key: _timing(values) for key, values in timings.items() if values},
            missing_data=dict(sorted(missing.items(), key=lambda item: (-item[1], item[0]))),
            card_feedback=[
                CardFeedbackRate(
                    service_id=service_id, kind=kind, indicator=indicator, shown=shown, accepted=acc, overridden=ovr
                )
                for service_id, kind, indicator, shown, acc, ovr in rates
            ],
            override_reasons=[
                OverrideReasonCount(kind=kind, reason_code=code, reason_display=display, count=n)
                for kind, code, display, n in reasons
            ],
            by_model_version=versions,
        )

    # -- health -----------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False


# -- schema migrations ------------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def prepare_schema(target: Engine | str, *, migrate_schema: bool) -> None:
    """Migrate the schema to head, or only check that it is there (SchemaOutdated if not)."""
    if migrate_schema:
        migrate(target)
        return
    with _engine_for(target) as engine:
        current, head = schema_revision(engine), head_revision()
        if current != head:
            raise SchemaOutdated(
                f"database schema is at {current or 'nothing'}, this service needs {head}: "
                "run `python -m cds_service migrate`"
            )


def migrate(target: Engine | str) -> str:
    """Bring the schema to head (idempotent; safe for replicas starting together). Returns head."""
    from alembic import command

    with _engine_for(target) as engine:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")
        return schema_revision(engine)


@contextmanager
def _engine_for(target: Engine | str) -> Iterator[Engine]:
    """The engine given, or one for the URL given that keeps no connection afterwards (the gunicorn
    master prepares the schema before forking: its workers must not inherit a connection)."""
    if not isinstance(target, str):
        yield target
        return
    engine = _engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


# -- helpers ----------------------------------------------------------------------------------


_ROWS_PER_STATEMENT = 500  # 9 columns: 4,500 bound values, far below SQLite's and PostgreSQL's limits


def _not_stored_yet(connection: Connection, records: Sequence[AssessmentAudit]) -> list[AssessmentAudit]:
    """The records whose ``audit_id`` is not in the table yet (one indexed look-up)."""
    keys = [str(record.audit_id) for record in records if record.audit_id is not None]
    stored = set(
        connection.execute(select(assessment_audit.c.audit_id).where(assessment_audit.c.audit_id.in_(keys))).scalars()
    )
    return [record for record in records if str(record.audit_id) not in stored]


def _audit_row(record: AssessmentAudit) -> dict:
    return {
        "audit_id": str(record.audit_id) if record.audit_id is not None else None,
        "hook_instance": str(record.hook_instance),
        "service_id": record.service_id,
        "hook": record.hook,
        "model_version": record.model_version,
        "outcome": record.outcome,
        "timing_ms": record.timing_ms,
        "missing_data": json.dumps(record.missing_data),
        "recorded_at": record.recorded_at.astimezone(UTC),
    }


def _insert_returning_ids(connection: Connection, table: Table, rows: list[dict]) -> Sequence[int]:
    """Insert rows; their ids, in order (see ``_sqlite_insert_rows`` for SQLite).
    PostgreSQL sends RETURNING rows in one reply."""
    if connection.dialect.name == "sqlite":
        last = _sqlite_insert_rows(connection, table, rows)
        return range(last - len(rows) + 1, last + 1)
    return connection.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()


def _insert_rows(connection: Connection, table: Table, rows: list[dict]) -> None:
    if connection.dialect.name == "sqlite":
        _sqlite_insert_rows(connection, table, rows)
    else:
        connection.execute(table.insert(), rows)


def _sqlite_insert_rows(connection: Connection, table: Table, rows: list[dict]) -> int:
    """One multi-row INSERT on SQLite; the last rowid.

    Each step of a SQLite statement (a RETURNING row, an executemany row) releases and retakes the
    GIL, and in a busy worker each retake waits for a request thread (up to 5 ms): a 200-row audit
    batch took seconds and kept interrupting the hook calls. One statement is one step. It is
    written as SQL with the columns' own bind processors (dates as SQLAlchemy stores them):
    SQLAlchemy's ``insert().values(rows)`` builds a new statement per batch, 0.22 ms of CPU a row.
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
    return connection.exec_driver_sql(sql, tuple(values)).lastrowid


# Built once: composing a statement costs SQLAlchemy more than running it (a JWT is checked on
# every hook call; building both statements per call cost ~0.1 ms of the 0.5 ms record).
_PURGE_EXPIRED_JTI = jwt_replay.delete().where(jwt_replay.c.expires_at < bindparam("now"))


@cache
def _record_jti(dialect_name: str):
    """Insert the id; on a clash, replace the row only if it has expired; return the row if either."""
    insert = (
        _dialect(dialect_name)
        .insert(jwt_replay)
        .values(issuer=bindparam("issuer"), jti=bindparam("jti"), expires_at=bindparam("expires_at"))
    )
    return insert.on_conflict_do_update(
        index_elements=[jwt_replay.c.issuer, jwt_replay.c.jti],
        set_={"expires_at": insert.excluded.expires_at},
        where=jwt_replay.c.expires_at < bindparam("now"),
    ).returning(jwt_replay.c.jti)


def _dialect(dialect_name: str):
    """The SQLAlchemy dialect module whose ``insert`` has ``on_conflict_*`` (both spell it alike)."""
    return postgresql if dialect_name == "postgresql" else sqlite


def _period(since: datetime | None, until: datetime | None):
    """Audit rows recorded from ``since`` up to, not including, ``until`` (either may be open)."""
    recorded = assessment_audit.c.recorded_at
    return and_(
        recorded >= since.astimezone(UTC) if since is not None else recorded.is_not(None),
        recorded < until.astimezone(UTC) if until is not None else recorded.is_not(None),
    )


def _as_utc(moment: datetime | date | None) -> datetime | None:
    """A date is its midnight, UTC; a naive datetime is taken as UTC."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time.min, tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _timing(values: list[float]) -> Timing:
    return Timing(count=len(values), p50_ms=_percentile(values, 50), p95_ms=_percentile(values, 95))


def _cards_with_outcome(outcome: str):
    """In a query of cards joined with their feedback: how many cards have feedback ``outcome``."""
    return func.count(distinct(case((feedback.c.outcome == outcome, assessment_card.c.card_uuid))))


def _card_feedback(in_period, *group_by):
    """Per ``group_by``: cards shown, accepted, overridden (each card once, however often it was
    audited or given feedback), for the assessments ``in_period``."""
    audit, card, fb = assessment_audit, assessment_card, feedback
    return (
        select(
            *group_by,
            func.count(distinct(card.c.card_uuid)),
            _cards_with_outcome("accepted"),
            _cards_with_outcome("overridden"),
        )
        .select_from(card.join(audit, card.c.assessment_id == audit.c.id))
        .outerjoin(fb, and_(fb.c.card_uuid == card.c.card_uuid, fb.c.service_id == audit.c.service_id))
        .where(in_period)
        .group_by(*group_by)
    )


def _model_version_figures(
    connection: Connection, in_period, timings: dict[str, list[float]]
) -> dict[str, ModelVersionFigures]:
    """Per model version: assessments by outcome, timing, cards shown and the feedback on them
    (each card counted once, as in ``card_feedback``)."""
    audit = assessment_audit
    outcomes: dict[str, dict[str, int]] = {}
    for version, outcome, n in connection.execute(
        select(audit.c.model_version, audit.c.outcome, func.count())
        .where(in_period)
        .group_by(audit.c.model_version, audit.c.outcome)
        .order_by(audit.c.model_version, audit.c.outcome)
    ):
        outcomes.setdefault(version or UNKNOWN_MODEL_VERSION, {})[outcome] = n
    feedback_by_version = {
        version or UNKNOWN_MODEL_VERSION: (shown, accepted, overridden)
        for version, shown, accepted, overridden in connection.execute(_card_feedback(in_period, audit.c.model_version))
    }
    figures = {}
    for version in sorted(outcomes):
        shown, accepted, overridden = feedback_by_version.get(version, (0, 0, 0))
        figures[version] = ModelVersionFigures(
            assessments=sum(outcomes[version].values()),
            by_outcome=outcomes[version],
            timing=_timing(timings[version]),
            cards_shown=shown,
            accepted=accepted,
            overridden=overridden,
        )
    return figures


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default), without needing NumPy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _feedback_row(service_id: str, entry: FeedbackEntry, received_at: datetime) -> dict:
    return {
        "service_id": service_id,
        "card_uuid": entry.card,
        "outcome": entry.outcome,
        "accepted_suggestions": (
            json.dumps([s.id for s in entry.acceptedSuggestions]) if entry.acceptedSuggestions else None
        ),
        "override_system": _reason(entry, "system"),
        "override_code": _reason(entry, "code"),
        "override_display": _reason(entry, "display"),
        "user_comment": entry.overrideReason.userComment if entry.overrideReason else None,
        "outcome_timestamp": entry.outcomeTimestamp.astimezone(UTC),
        "received_at": received_at,
    }


def _issued_cards(connection: Connection, service_id: str, cards: list[str]) -> dict[str, set[str] | None]:
    """Of ``cards``, those the audit shows this service issued, each with its suggestion uuids
    (None: audited before revision 0005, unknown). Their audit rows are locked until the
    transaction ends (PostgreSQL; in uuid order, so two POSTs cannot deadlock on them)."""
    card, audit = assessment_card, assessment_audit
    issued: dict[str, set[str] | None] = {}
    for uuid, suggestions in connection.execute(
        select(card.c.card_uuid, card.c.suggestion_uuids)
        .join(audit, card.c.assessment_id == audit.c.id)
        .where(audit.c.service_id == service_id, card.c.card_uuid.in_(cards))
        .order_by(card.c.card_uuid, card.c.id)
        .with_for_update(of=card)
    ):
        known = issued.setdefault(uuid, None)
        if suggestions is not None:  # a card audited again (a retried call) has the same ones
            issued[uuid] = (known or set()) | set(json.loads(suggestions))
    return issued


def _stored_feedback(connection: Connection, service_id: str, cards: list[str]) -> dict[str, list[dict]]:
    stored: dict[str, list[dict]] = {}
    for row in connection.execute(
        select(feedback).where(feedback.c.service_id == service_id, feedback.c.card_uuid.in_(cards))
    ):
        values = dict(row._mapping)
        values["outcome_timestamp"] = _utc(values["outcome_timestamp"])  # SQLite gives it back naive
        stored.setdefault(row.card_uuid, []).append(values)
    return stored


_FEEDBACK_DETAILS = ("override_system", "override_code", "override_display", "user_comment")


def _same_details(a: dict, b: dict) -> bool:
    def suggestions(row: dict) -> list[str]:
        return sorted(json.loads(row["accepted_suggestions"] or "[]"))

    return suggestions(a) == suggestions(b) and all(a[name] == b[name] for name in _FEEDBACK_DETAILS)


def _judge(
    service_id: str, row: dict, issued: dict[str, set[str] | None], stored: dict[str, list[dict]]
) -> FeedbackResult:
    """The fate of one entry (see ``FeedbackStore.add``); an entry to store joins ``stored``, so a
    later entry of the same POST is judged against it."""
    card = row["card_uuid"]

    def refused(error: str, problem: str) -> FeedbackResult:
        return FeedbackResult(card=card, status="refused", error=error, problem=problem)

    if card not in issued:
        return refused("unknown_card", f"No card with uuid '{card}' was issued by service '{service_id}'.")
    suggestions = issued[card]
    if row["accepted_suggestions"] is not None and suggestions is not None:
        unknown = [sid for sid in json.loads(row["accepted_suggestions"]) if sid not in suggestions]
        if unknown:
            return refused(
                "unknown_suggestion", f"Card '{card}' carried no suggestion with uuid {', '.join(map(repr, unknown))}."
            )
    earlier = stored.setdefault(card, [])
    for prior in earlier:
        if prior["outcome"] == row["outcome"] and prior["outcome_timestamp"] == row["outcome_timestamp"]:
            if _same_details(prior, row):
                return FeedbackResult(card=card, status="duplicate")
            return refused(
                "feedback_conflict",
                f"Card '{card}' is stored as {row['outcome']} at this outcomeTimestamp with other details.",
            )
    for prior in earlier:
        if prior["outcome"] != row["outcome"]:
            return refused(
                "outcome_conflict",
                f"Card '{card}' is stored as {prior['outcome']}; a card is either accepted or overridden.",
            )
    earlier.append(row)
    return FeedbackResult(card=card, status="stored")


def _reason(entry: FeedbackEntry, attribute: str) -> str | None:
    if entry.overrideReason is None or entry.overrideReason.reason is None:
        return None
    return getattr(entry.overrideReason.reason, attribute)


def _engine(url: str, *, statement_timeout: bool = True, wait_for_disk: bool = True) -> Engine:
    """``wait_for_disk=False``: a commit returns before the disk has it (SQLite ``synchronous=NORMAL``,
    PostgreSQL ``synchronous_commit=off``), never leaving the database inconsistent; only the
    last moments' commits can be lost, to a crash of the PostgreSQL server or of the host."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # safe for many workers
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
