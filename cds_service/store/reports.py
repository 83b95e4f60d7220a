"""Governance figures over the audit log and the feedback: counts, timings, missing data,
acceptance and override rates, per service, card kind and model version."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, and_, case, distinct, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from .audit_log import in_period as _period
from .database import Database
from .tables import assessment_audit, assessment_card, feedback

UNKNOWN_MODEL_VERSION = "(unknown)"  # the key of rows that carry no model version


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


class AuditReports:
    def __init__(self, database: Database) -> None:
        self.database = database

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
        start, end = _as_utc(since), _as_utc(until)
        audit, card, fb = assessment_audit, assessment_card, feedback
        in_period = _period(start, end)
        with self.database.engine.connect() as connection:
            by_service_outcome: dict[str, dict[str, int]] = {}
            for service_id, outcome, n in connection.execute(
                select(audit.c.service_id, audit.c.outcome, func.count())
                .where(in_period)
                .group_by(audit.c.service_id, audit.c.outcome)
                .order_by(audit.c.service_id, audit.c.outcome)
            ):
                by_service_outcome.setdefault(service_id, {})[outcome] = n

            cards_by_indicator: dict[str, int] = {
                indicator: n
                for indicator, n in connection.execute(
                    select(card.c.indicator, func.count())
                    .join(audit, card.c.assessment_id == audit.c.id)
                    .where(in_period)
                    .group_by(card.c.indicator)
                    .order_by(card.c.indicator)
                )
            }

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
            since=start,
            until=end,
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


def _as_utc(moment: datetime | date | None) -> datetime | None:
    """A date is its midnight, UTC; a naive datetime is taken as UTC."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time.min, tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _timing(values: list[float]) -> Timing:
    return Timing(count=len(values), p50_ms=_percentile(values, 50), p95_ms=_percentile(values, 95))


def _cards_with_outcome(outcome: str) -> ColumnElement[int]:
    """In a query of cards joined with their feedback: how many cards have feedback ``outcome``."""
    return func.count(distinct(case((feedback.c.outcome == outcome, assessment_card.c.card_uuid))))


def _card_feedback(in_period: ColumnElement[bool], *group_by: Any) -> Select[Any]:
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
    connection: Connection, in_period: ColumnElement[bool], timings: dict[str, list[float]]
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


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default), without needing NumPy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
