"""The audit report's period, missing data and model-version figures, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from cds_service.audit_report import format_audit_report
from cds_service.schemas import FeedbackRequest
from cds_service.store import AssessmentAudit, AuditCard, Store

SERVICE = "hcc-systemic-therapy-select"


def audit(day: int, version: str | None, *, cards=(), missing=(), outcome="cards", timing_ms=100.0) -> AssessmentAudit:
    return AssessmentAudit(
        hook_instance=uuid.uuid4(),
        service_id=SERVICE,
        hook="order-select",
        model_version=version,
        outcome=outcome,
        timing_ms=timing_ms,
        cards=[
            AuditCard(uuid=card, indicator="warning", kind="sorafenib-resistance", suggestions=("s1",))
            for card in cards
        ],
        missing_data=list(missing),
        recorded_at=datetime(2026, 11, day, 12, tzinfo=UTC),
    )


def feedback(*specs: tuple[str, str]):
    return FeedbackRequest.model_validate(
        {
            "feedback": [
                {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-20T10:00:00Z"}
                | ({"acceptedSuggestions": [{"id": "s1"}]} if outcome == "accepted" else {})
                for card, outcome in specs
            ]
        }
    ).feedback


def test_the_report_covers_since_to_until_and_counts_missing_data_items(database_url):
    store = Store(database_url)
    store.audit.record_assessments(
        [
            audit(1, "2025.1", missing=["labs", "afp"]),
            audit(10, "2025.1", missing=["afp"]),
            audit(10, "2025.1", missing=["afp", "afp"]),  # an item counts once per assessment
            audit(20, "2025.1", missing=["imaging"]),
        ]
    )
    report = store.reports.audit_report(date(2026, 11, 5), date(2026, 11, 20))  # the 20th is not included
    assert report.assessments == 2
    assert report.missing_data == {"afp": 2}
    assert report.by_model_version is None  # only when asked for
    everything = store.reports.audit_report()
    assert list(everything.missing_data.items()) == [("afp", 3), ("imaging", 1), ("labs", 1)]  # most often first
    assert store.reports.audit_report(until=datetime(2026, 11, 10, 12, tzinfo=UTC)).assessments == 1


def test_the_report_compares_model_versions(database_url):
    store = Store(database_url)
    store.audit.record_assessments(
        [
            audit(2, "2025.1", cards=["old-1"], timing_ms=100),
            audit(3, "2025.1", cards=["old-2"], timing_ms=300),
            audit(4, "2025.1", outcome="no_cards", timing_ms=50),
            audit(5, "2026.1", cards=["new-1"], timing_ms=80),
            audit(6, None, cards=["before-versions"], timing_ms=10),
        ]
    )
    store.feedback.add(SERVICE, feedback(("old-1", "overridden"), ("old-2", "overridden"), ("new-1", "accepted")))

    versions = store.reports.audit_report(by_model_version=True).by_model_version
    assert list(versions) == ["(unknown)", "2025.1", "2026.1"]
    old, new = versions["2025.1"], versions["2026.1"]
    assert (old.assessments, old.by_outcome) == (3, {"cards": 2, "no_cards": 1})
    assert (old.timing.count, old.timing.p50_ms) == (3, 100.0)
    assert (old.cards_shown, old.accepted, old.overridden, old.override_rate) == (2, 0, 2, 1.0)
    assert (new.assessments, new.cards_shown, new.accepted, new.acceptance_rate) == (1, 1, 1, 1.0)
    assert versions["(unknown)"].cards_shown == 1

    text = format_audit_report(store.reports.audit_report(date(2026, 11, 1), date(2026, 12, 1), by_model_version=True))
    assert "Assessments since 2026-11-01 up to 2026-11-30: 5" in text
    assert "  2025.1: 3 (cards 2, no_cards 1), 100/280 ms, 2, 0 (0%), 2 (100%)" in text
    assert "  2026.1: 1 (cards 1), 80/80 ms, 1, 1 (100%), 0 (0%)" in text
