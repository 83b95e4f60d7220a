"""The feedback/audit store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from postgres import unreachable_database
from pydantic import ValidationError
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, event, inspect, text

from cds_service.schemas import FeedbackRequest
from cds_service.store import (
    AssessmentAudit,
    AuditCard,
    SchemaOutdated,
    Store,
    StoreUnavailable,
    database,
    head_revision,
    migrate,
    replay,
    schema,
    schema_revision,
)
from cds_service.store.database import SQLITE_NO_WAIT_CHECKPOINT_PAGES
from cds_service.store.schema import _alembic_config
from cds_service.store.tables import jwt_replay, metadata

SERVICE = "hcc-systemic-therapy-select"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))


def entries(*specs: dict) -> list:
    return FeedbackRequest.model_validate({"feedback": list(specs)}).feedback


def accepted(card: str, at: datetime = T0) -> dict:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "s1"}],
        "outcomeTimestamp": at.isoformat(),
    }


def overridden(card: str, code: str = "not-relevant", at: datetime = T0) -> dict:
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "http://example.org/reasons", "code": code, "display": code.title()}},
        "outcomeTimestamp": at.isoformat(),
    }


def audit(
    outcome: str = "cards", timing_ms: float = 100.0, cards=(), service_id: str = SERVICE, **extra
) -> AssessmentAudit:
    return AssessmentAudit(
        hook_instance=uuid.uuid4(),
        service_id=service_id,
        hook="order-select",
        model_version="2025.1",
        outcome=outcome,
        timing_ms=timing_ms,
        cards=[AuditCard(uuid=u, indicator=i, kind=k, suggestions=("s1",)) for u, i, k in cards],  # s1: see accepted()
        **extra,
    )


def issue(store: Store, *cards: str, service_id: str = SERVICE, suggestions=("s1", "s2")) -> None:
    """Audit an assessment that issued ``cards``: feedback is stored only for cards issued."""
    cards_ = [AuditCard(uuid=card, indicator="warning", kind="resistance", suggestions=suggestions) for card in cards]
    store.audit.record_assessment(audit(service_id=service_id).model_copy(update={"cards": cards_}))


def statuses(results) -> list[str]:
    return [result.error or result.status for result in results]


# -- feedback -------------------------------------------------------------------------------------


def test_feedback_is_stored_once_per_entry(database_url):
    store = Store(database_url)
    issue(store, "card-1", "card-2", "card-3")
    batch = entries(accepted("card-1"), overridden("card-2"))
    assert statuses(store.feedback.add(SERVICE, batch)) == ["stored", "stored"]
    assert statuses(store.feedback.add(SERVICE, batch)) == ["duplicate", "duplicate"]  # the client's retry, said so
    assert statuses(store.feedback.add(SERVICE, entries(accepted("card-1"), accepted("card-3")))) == [
        "duplicate",
        "stored",
    ]
    rows = store.feedback.entries()
    assert [(r["card_uuid"], r["outcome"]) for r in rows] == [
        ("card-1", "accepted"),
        ("card-2", "overridden"),
        ("card-3", "accepted"),
    ]
    assert rows[1]["override_code"] == "not-relevant"


def test_same_card_at_another_time_is_another_entry(database_url):
    store = Store(database_url)
    issue(store, "card-1")
    store.feedback.add(SERVICE, entries(overridden("card-1")))
    store.feedback.add(SERVICE, entries(overridden("card-1", at=T0 + timedelta(minutes=5))))
    # The same instant written with another offset is the same entry.
    store.feedback.add(SERVICE, entries(overridden("card-1", at=T0.astimezone(UTC))))
    assert store.feedback.count() == 2


def test_batch_is_all_or_nothing(database_url):
    store = Store(database_url)
    issue(store, "card-0", "card-1", "card-2")
    store.feedback.add(SERVICE, entries(accepted("card-0")))
    batch = entries(accepted("card-1"), accepted("card-2"))
    batch[1] = batch[1].model_copy(update={"outcome": None})  # NOT NULL violated by the second row
    with pytest.raises(StoreUnavailable):
        store.feedback.add(SERVICE, batch)
    assert [r["card_uuid"] for r in store.feedback.entries()] == ["card-0"]


def test_data_survives_reopening(database_url):
    issue(Store(database_url), "card-1")
    Store(database_url).feedback.add(SERVICE, entries(accepted("card-1")))
    reopened = Store(database_url)
    assert [r["card_uuid"] for r in reopened.feedback.entries()] == ["card-1"]
    assert reopened.feedback.entries()[0]["outcome_timestamp"].replace(tzinfo=None) == T0.astimezone(UTC).replace(
        tzinfo=None
    )
    [record] = reopened.audit.records()
    assert record.card_uuids == ["card-1"] and record.indicators == ["warning"]
    assert record.cards[0].suggestions == ("s1", "s2")


def test_unreachable_database_is_store_unavailable(database_url):
    store = Store(database_url)
    store.database.engine.dispose()
    store.database.engine = unreachable_database()
    with pytest.raises(StoreUnavailable):
        store.feedback.add(SERVICE, entries(accepted("card-1")))
    with pytest.raises(StoreUnavailable):
        store.audit.record_assessment(audit())
    assert store.ping() is False


def test_feedback_only_for_cards_this_service_issued(database_url):
    store = Store(database_url)
    issue(store, "card-1")
    issue(store, "card-sign", service_id="hcc-systemic-therapy-sign")
    batch = entries(accepted("card-1"), accepted("never-issued"), accepted("card-sign"))
    assert statuses(store.feedback.add(SERVICE, batch)) == ["stored", "unknown_card", "unknown_card"]
    assert [r["card_uuid"] for r in store.feedback.entries()] == ["card-1"]


def test_accepted_suggestions_must_be_the_cards_own(database_url):
    store = Store(database_url)
    issue(store, "card-1", suggestions=("s1", "s2"))
    issue(store, "no-suggestions", suggestions=())
    other_suggestion = {**accepted("card-1"), "acceptedSuggestions": [{"id": "s1"}, {"id": "s9"}]}
    assert statuses(store.feedback.add(SERVICE, entries(other_suggestion, accepted("no-suggestions")))) == [
        "unknown_suggestion",
        "unknown_suggestion",
    ]
    assert store.feedback.count() == 0


def test_cards_audited_before_their_suggestions_were_are_taken_on_trust(database_url):
    store = Store(database_url)
    issue(store, "old-card")
    with store.database.engine.begin() as connection:  # as revision 0005 leaves the rows audited before it
        connection.execute(text("UPDATE assessment_card SET suggestion_uuids = NULL"))
    entry = {**accepted("old-card"), "acceptedSuggestions": [{"id": "whatever-it-carried"}]}
    assert statuses(store.feedback.add(SERVICE, entries(entry))) == ["stored"]


def test_a_card_is_either_accepted_or_overridden(database_url):
    store = Store(database_url)
    issue(store, "card-1", "card-2")
    later = T0 + timedelta(minutes=5)
    assert statuses(store.feedback.add(SERVICE, entries(accepted("card-1"), overridden("card-2")))) == [
        "stored",
        "stored",
    ]
    assert statuses(
        store.feedback.add(SERVICE, entries(overridden("card-1", at=later), accepted("card-2", at=later)))
    ) == [
        "outcome_conflict",
        "outcome_conflict",
    ]
    # The same outcome reported again later is another interaction: a second suggestion accepted.
    again = {**accepted("card-1", at=later), "acceptedSuggestions": [{"id": "s2"}]}
    assert statuses(store.feedback.add(SERVICE, entries(again))) == ["stored"]
    assert sorted((r["card_uuid"], r["outcome"]) for r in store.feedback.entries()) == [
        ("card-1", "accepted"),
        ("card-1", "accepted"),
        ("card-2", "overridden"),
    ]


def test_within_one_post_a_repeat_is_a_duplicate_and_a_contradiction_is_refused(database_url):
    store = Store(database_url)
    issue(store, "card-1")
    batch = entries(overridden("card-1"), overridden("card-1"), accepted("card-1"))
    assert statuses(store.feedback.add(SERVICE, batch)) == ["stored", "duplicate", "outcome_conflict"]
    assert store.feedback.count() == 1


def test_the_same_entry_with_other_details_is_a_conflict_not_a_duplicate(database_url):
    store = Store(database_url)
    issue(store, "card-1")
    store.feedback.add(SERVICE, entries(overridden("card-1", "not-relevant")))
    assert statuses(store.feedback.add(SERVICE, entries(overridden("card-1", "patient-declined")))) == [
        "feedback_conflict"
    ]
    # The same instant written with another offset is the same entry: a duplicate.
    assert statuses(store.feedback.add(SERVICE, entries(overridden("card-1", at=T0.astimezone(UTC))))) == ["duplicate"]
    assert [r["override_code"] for r in store.feedback.entries()] == ["not-relevant"]


def test_concurrent_contradicting_posts_store_one_outcome(database_url):
    """Two workers (two stores, two connection pools) told at once that a card was accepted and
    that it was overridden: the card's audit rows are locked while it is judged, so one of them
    is stored and the other refused, never both."""
    stores = [Store(database_url) for _ in range(2)]
    cards = [f"card-{i}" for i in range(20)]
    issue(stores[0], *cards)
    barrier = threading.Barrier(2)

    def post(n: int) -> list[str]:
        store, make = stores[n], (accepted, overridden)[n]
        outcomes = []
        for card in cards:
            barrier.wait()
            outcomes += statuses(store.feedback.add(SERVICE, entries(make(card))))
        return outcomes

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(post, range(2))
    assert all(sorted(pair) == ["outcome_conflict", "stored"] for pair in zip(first, second, strict=True))
    rows = stores[0].feedback.entries()
    assert sorted(r["card_uuid"] for r in rows) == sorted(cards)  # one outcome per card


def test_the_report_counts_an_overridden_card_once(database_url):
    store = Store(database_url)
    issue(store, "card-1")
    issue(store, "card-1")  # the same hook call retried: the same card uuid audited twice
    store.feedback.add(SERVICE, entries(overridden("card-1"), overridden("card-1", at=T0 + timedelta(minutes=1))))
    report = store.reports.audit_report()
    assert [(r.reason_code, r.count) for r in report.override_reasons] == [("not-relevant", 1)]
    assert [(r.shown, r.overridden) for r in report.card_feedback] == [(1, 1)]


def test_a_database_host_that_never_answers_is_store_unavailable_after_the_connect_timeout(monkeypatch):
    """A listening socket that never speaks: a host whose packets go nowhere looks the same to
    libpq. Without a connect timeout every feedback POST and /readyz would wait for it forever."""
    monkeypatch.setattr(database, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = Store(f"postgresql+psycopg://cds:pw@127.0.0.1:{silent.getsockname()[1]}/cds", schema="as-is")
        outcome = _in_thread(lambda: (_raised(store.feedback.add, SERVICE, entries(accepted("card-1"))), store.ping()))
        assert outcome == [(StoreUnavailable, False)], outcome or "a call still waits for the silent database"


def _raised(call, *args) -> type[Exception] | None:
    try:
        call(*args)
    except Exception as exc:
        return type(exc)
    return None


def _in_thread(work, timeout: float = 30) -> list:
    """What ``work`` returned or raised, or [] if it was still running after ``timeout`` s."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome


def test_concurrent_writes_in_one_process_take_turns_on_sqlite(tmp_path):
    """SQLite lets one connection write at a time; threads it turns away retry after growing
    sleeps and can lose again and again (1 s waits at 16 connections). The store queues its own
    writes instead: with SQLite's retries switched off, none of them is ever turned away."""
    store = Store(f"sqlite:///{tmp_path}/turns.sqlite3")
    for engine in (store.database.engine, store.database.replay_engine):
        event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"))
        engine.dispose()  # connections from now on refuse to wait for the database's lock
    now = time.time()
    issue(store, *[f"card-{n}-{i}" for n in range(8) for i in range(15)])

    def writer(n: int) -> list:
        failed = []
        for i in range(15):
            for write in (
                lambda i=i: store.feedback.add(SERVICE, entries(accepted(f"card-{n}-{i}"))),
                lambda i=i: store.replays.first_use("https://ehr.example/", f"j-{n}-{i}", now + 60),
                lambda: store.audit.record_assessment(audit()),
            ):
                try:
                    write()
                except StoreUnavailable as exc:
                    failed.append(exc)
        return failed

    with ThreadPoolExecutor(8) as pool:
        failures = list(pool.map(writer, range(8)))
    assert failures == [[]] * 8, "a write was turned away by another thread's"
    assert store.feedback.count() == 8 * 15 and len(store.audit.records()) == 8 * 15 + 1  # + the one issuing the cards


def test_a_write_waits_no_longer_than_the_timeout_behind_a_locked_sqlite_database(tmp_path, monkeypatch):
    """Another program holding the database's write lock (a backup, an operator's shell): every
    write gives up with StoreUnavailable (a 503) after about the timeout, however many queue for
    it in this process, and the store works again once the lock is gone."""
    monkeypatch.setattr(database, "SQLITE_TIMEOUT_S", 0.5)
    path = tmp_path / "held.sqlite3"
    store = Store(f"sqlite:///{path}")
    issue(store, *[f"card-{n}" for n in range(8)], "card-after")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other program's write lock
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        raised = list(
            pool.map(lambda n: _raised(store.feedback.add, SERVICE, entries(accepted(f"card-{n}"))), range(8))
        )
    waited = time.monotonic() - started
    other.execute("ROLLBACK")
    other.close()
    assert raised == [StoreUnavailable] * 8
    # Queued one after another, eight writes would wait 8 × 0.5 s; each waits at most for the
    # lock in this process and then for the database's, 0.5 s each.
    assert waited < 2.5, f"the writes gave up after {waited:.1f} s"
    assert (
        statuses(store.feedback.add(SERVICE, entries(accepted("card-after")))) == ["stored"]
        and store.feedback.count() == 1
    )


def test_a_statement_blocked_by_a_lock_is_store_unavailable_after_the_statement_timeout(postgres_url, monkeypatch):
    monkeypatch.setattr(database, "STATEMENT_TIMEOUT_MS", 300)
    url = postgres_url()
    store = Store(url)
    issue(store, "card-1")
    locker = create_engine(url)
    with locker.connect() as held:
        held.execute(text("LOCK TABLE feedback IN ACCESS EXCLUSIVE MODE"))  # until this transaction ends
        outcome = _in_thread(lambda: store.feedback.add(SERVICE, entries(accepted("card-1"))))
        assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome or "still waiting"
        held.rollback()
    locker.dispose()
    assert (
        statuses(store.feedback.add(SERVICE, entries(accepted("card-1")))) == ["stored"] and store.feedback.count() == 1
    )


def test_the_audit_report_runs_without_the_statement_timeout(postgres_url):
    def shown(store: Store) -> str:
        with store.database.engine.connect() as connection:
            return connection.execute(text("SHOW statement_timeout")).scalar_one()

    url = postgres_url()
    assert shown(Store(url)) == "10s"  # the service's calls
    assert shown(Store(url, schema="check", statement_timeout=False)) == "0"  # python -m cds_service audit-report


def test_migrations_wait_for_another_replicas_migration_beyond_the_statement_timeout(postgres_url, monkeypatch):
    monkeypatch.setattr(database, "STATEMENT_TIMEOUT_MS", 300)
    url = postgres_url()
    other_replica = create_engine(url)
    with other_replica.connect() as held:
        held.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": schema.MIGRATION_LOCK_KEY})
        started = time.monotonic()
        threading.Timer(1.0, held.rollback).start()  # the other replica finishes after 1 s
        outcome = _in_thread(lambda: Store(url))
    other_replica.dispose()
    assert len(outcome) == 1 and isinstance(outcome[0], Store), outcome
    assert time.monotonic() - started >= 1.0  # it waited for the lock, well past 0.3 s
    assert schema_revision(outcome[0].database.engine) == head_revision()


# -- migrations -----------------------------------------------------------------------------------


def test_migration_from_empty_to_head_is_idempotent(database_url):
    assert migrate(database_url) == head_revision()
    assert migrate(database_url) == head_revision()
    engine = create_engine(database_url)
    assert {"feedback", "assessment_audit", "assessment_card", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    assert schema_revision(engine) == head_revision()
    Store(database_url)  # and the store opens it without migrating anything again
    assert schema_revision(engine) == head_revision()
    engine.dispose()


def test_the_migrations_build_the_schema_the_code_declares(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrate(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_pre_migration_database_is_adopted_and_deduplicated(database_url):
    """A database the service made with create_all before migrations existed, with a retried entry."""
    old = MetaData()
    old_feedback = Table(
        "feedback",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("service_id", String(200), nullable=False, index=True),
        Column("card_uuid", String(200), nullable=False, index=True),
        Column("outcome", String(20), nullable=False),
        Column("accepted_suggestions", Text),
        Column("override_system", String(500)),
        Column("override_code", String(200)),
        Column("override_display", String(500)),
        Column("user_comment", Text),
        Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    engine = create_engine(database_url)
    old.create_all(engine)
    at = T0.astimezone(UTC)
    with engine.begin() as connection:
        row = {
            "service_id": SERVICE,
            "card_uuid": "card-1",
            "outcome": "overridden",
            "outcome_timestamp": at,
            "received_at": at,
        }
        connection.execute(old_feedback.insert(), [row, row])
    engine.dispose()
    store = Store(database_url)
    assert [r["id"] for r in store.feedback.entries()] == [1]
    issue(store, "card-2")
    store.feedback.add(SERVICE, entries(accepted("card-2")))
    assert store.feedback.count() == 2


def test_store_without_migration_refuses_an_old_schema(database_url):
    with pytest.raises(SchemaOutdated, match="python -m cds_service migrate"):
        Store(database_url, schema="check")
    migrate(database_url)
    store = Store(database_url, schema="check")
    issue(store, "card-1")
    assert statuses(store.feedback.add(SERVICE, entries(accepted("card-1")))) == ["stored"]


# -- audit ----------------------------------------------------------------------------------------


def test_audit_records_round_trip(database_url):
    store = Store(database_url)
    record = audit(
        cards=[("c-1", "critical", "sorafenib-resistance"), ("c-2", "info", None)],
        missing_data=["labs", "afp"],
    )
    store.audit.record_assessment(record)
    store.audit.record_assessment(audit(outcome="error", timing_ms=3.0))
    first, second = store.audit.records()
    assert first == record
    assert (second.outcome, second.cards, second.missing_data) == ("error", [], [])


def test_a_batch_written_again_stores_only_its_new_rows(database_url):
    """What the audit writer does after a commit whose acknowledgement was lost."""
    store = Store(database_url)
    batch = [audit(cards=[(f"c-{n}", "info", "k")]) for n in range(3)]
    store.audit.record_assessments(batch)
    late = audit(cards=[("c-late", "warning", "k")])
    store.audit.record_assessments(batch + [late])
    stored = store.audit.records()
    assert stored == batch + [late]  # each once, each with its own card
    assert len({a.audit_id for a in stored}) == 4


def test_audit_rows_from_before_the_row_key_read_back_without_one(database_url):
    from alembic import command

    engine = create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0003")
        connection.execute(
            text(
                "INSERT INTO assessment_audit"
                " (hook_instance, service_id, hook, outcome, timing_ms, missing_data, recorded_at)"
                " VALUES ('8c1b3f0e-6a41-4d4c-9a55-2b1f1e0c7d10', :service, 'order-select', 'cards', 2.5, '[]', :at)"
            ),
            {"service": SERVICE, "at": T0.astimezone(UTC)},
        )
    engine.dispose()
    store = Store(database_url)  # migrates 0003 -> head
    store.audit.record_assessment(audit())
    legacy, new = store.audit.records()
    assert legacy.audit_id is None and str(legacy.hook_instance) == "8c1b3f0e-6a41-4d4c-9a55-2b1f1e0c7d10"
    assert new.audit_id is not None


@pytest.mark.parametrize(
    "field, value",
    [
        ("missing_data", ["AFP 400 ng/mL"]),  # a value, not a key
        ("missing_data", ["John Smith"]),
        ("service_id", "patient name"),
        ("outcome", "maybe"),
        ("timing_ms", -1),
        ("patient_name", "John"),  # no room for anything else
        ("recorded_at", datetime(2026, 1, 1)),
    ],
)
def test_audit_record_refuses_phi_shaped_content(field, value):
    values = {
        "hook_instance": uuid.uuid4(),
        "service_id": SERVICE,
        "hook": "order-select",
        "outcome": "cards",
        "timing_ms": 1.0,
    }
    with pytest.raises(ValidationError):
        AssessmentAudit(**{**values, field: value})


def test_audit_report_counts_timings_and_feedback_rates(database_url):
    store = Store(database_url)
    old = datetime(2026, 1, 1, tzinfo=UTC)
    store.audit.record_assessment(audit(outcome="no_cards", timing_ms=9999, recorded_at=old))
    for i in range(1, 21):  # 20 assessments, 10..200 ms, one resistance card each
        store.audit.record_assessment(
            audit(timing_ms=10.0 * i, cards=[(f"res-{i}", "warning", "sorafenib-resistance")])
        )
    store.audit.record_assessment(audit(outcome="fast_path", timing_ms=1.0, service_id="hcc-systemic-therapy-sign"))
    store.audit.record_assessment(audit(cards=[("surv-1", "info", "second-line-survival")], timing_ms=50))
    store.feedback.add(SERVICE, entries(*[accepted(f"res-{i}") for i in range(1, 6)]))
    store.feedback.add(SERVICE, entries(overridden("res-6", "not-relevant"), overridden("res-7", "not-relevant")))
    store.feedback.add(SERVICE, entries(overridden("res-8", "patient-declined"), overridden("surv-1", "not-relevant")))
    store.feedback.add("hcc-systemic-therapy-sign", entries(accepted("res-9")))  # other service: not this card

    report = store.reports.audit_report(since=datetime(2026, 6, 1).date())
    assert report.assessments == 22
    assert report.by_service_outcome == {
        "hcc-systemic-therapy-select": {"cards": 21},
        "hcc-systemic-therapy-sign": {"fast_path": 1},
    }
    assert report.cards_by_indicator == {"info": 1, "warning": 20}
    select_timing = report.timing[SERVICE]
    assert (select_timing.count, select_timing.p50_ms) == (21, 100.0)
    assert select_timing.p95_ms == pytest.approx(190.0)
    assert report.timing["*"].count == 22
    rates = {(r.kind, r.indicator): r for r in report.card_feedback}
    resistance = rates[("sorafenib-resistance", "warning")]
    assert (resistance.shown, resistance.accepted, resistance.overridden) == (20, 5, 3)
    assert resistance.acceptance_rate == 0.25 and resistance.override_rate == 0.15
    assert [(r.kind, r.reason_code, r.count) for r in report.override_reasons] == [
        ("sorafenib-resistance", "not-relevant", 2),
        ("second-line-survival", "not-relevant", 1),
        ("sorafenib-resistance", "patient-declined", 1),
    ]
    assert store.reports.audit_report().assessments == 23


# -- JWT replay record ----------------------------------------------------------------------------


def _put_jti(store: Store, issuer: str, jti: str, expires_at: float) -> None:
    """A jti row written directly, e.g. one whose token has already expired."""
    with store.database.engine.begin() as connection:
        connection.execute(jwt_replay.insert().values(issuer=issuer, jti=jti, expires_at=expires_at))


def _jti_rows(store: Store) -> set[str]:
    with store.database.engine.connect() as connection:
        return {row.jti for row in connection.execute(jwt_replay.select())}


def test_jti_replay_record_refuses_live_ids_and_forgets_expired_ones(database_url):
    store, now = Store(database_url), time.time()
    issuer = "https://ehr.example/"
    assert store.replays.first_use(issuer, "j-1", now + 60)
    assert not store.replays.first_use(issuer, "j-1", now + 60)  # a replay, on any worker or replica
    assert Store(database_url).replays.first_use(issuer, "j-1", now + 60) is False  # another process
    assert store.replays.first_use("https://other.example/", "j-1", now + 60)  # jti is per issuer
    _put_jti(store, issuer, "j-old", now - 1)  # a token that expired a second ago
    assert store.replays.first_use(issuer, "j-old", now + 60)  # its id may come back once it has expired
    assert not store.replays.first_use(issuer, "j-old", now + 60)
    assert _jti_rows(store) == {"j-1", "j-old"}


def test_only_jwt_ids_are_committed_without_waiting_for_the_disk(database_url):
    """Feedback and audit rows must survive a power cut once acknowledged; a JWT id may be lost
    to one (its token expires within minutes), and waiting for the disk was half a JWT check."""
    store = Store(database_url)
    postgres = store.database.engine.dialect.name == "postgresql"
    setting = "SHOW synchronous_commit" if postgres else "PRAGMA synchronous"
    waits, does_not = ("on", "off") if postgres else (2, 1)  # SQLite: 2 = FULL, 1 = NORMAL
    for engine, expected in ((store.database.engine, waits), (store.database.replay_engine, does_not)):
        with engine.connect() as connection:
            assert connection.exec_driver_sql(setting).scalar_one() == expected
    if not postgres:  # there the log is copied into the database, and waited for, in small steps
        with store.database.replay_engine.connect() as connection:
            assert (
                connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == SQLITE_NO_WAIT_CHECKPOINT_PAGES
            )
    assert store.replays.first_use("https://ehr.example/", "j-1", time.time() + 60)
    assert not Store(database_url).replays.first_use("https://ehr.example/", "j-1", time.time() + 60)


def test_expired_jti_rows_are_deleted_once_the_purge_interval_has_passed(database_url, monkeypatch):
    store, issuer, hour = Store(database_url), "https://ehr.example/", 3600
    assert store.replays.first_use(issuer, "j-first", time.time() + hour)  # the first call purges (nothing yet)
    _put_jti(store, issuer, "j-expired", time.time() - 1)
    assert store.replays.first_use(issuer, "j-2", time.time() + hour)
    assert _jti_rows(store) == {"j-first", "j-expired", "j-2"}  # within the interval: left for later

    clock = time.time() + replay.JTI_PURGE_INTERVAL_S + 1
    monkeypatch.setattr(replay, "time", SimpleNamespace(time=lambda: clock))  # the store's clock only
    assert store.replays.first_use(issuer, "j-3", clock + hour)
    assert _jti_rows(store) == {"j-first", "j-2", "j-3"}
    assert not store.replays.first_use(issuer, "j-2", clock + hour)  # the live ones are still replays
