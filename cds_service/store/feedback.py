"""CDS Hooks feedback, stored only for cards the audit log shows this service issued.

The entries of a POST that are stored are written in one transaction; an entry the store already
holds (a client's retry) is reported as a duplicate, not stored twice, and one contradicting what
is stored (the same card accepted and overridden) is refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..schemas import FeedbackEntry
from .database import Database, as_utc
from .tables import assessment_audit, assessment_card, feedback

FeedbackError = Literal["unknown_card", "unknown_suggestion", "outcome_conflict", "feedback_conflict"]


class FeedbackResult(BaseModel):
    """What became of one entry of a feedback POST: stored now, stored already (a retry), or
    refused with the reason (``error``: a code; ``problem``: a sentence)."""

    card: str
    status: Literal["stored", "duplicate", "refused"]
    error: FeedbackError | None = None
    problem: str | None = None


class FeedbackStore:
    def __init__(self, database: Database) -> None:
        self.database = database

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
        with self.database.writing() as connection:
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
        with self.database.engine.connect() as connection:
            n: int = connection.execute(select(func.count()).select_from(feedback)).scalar_one()
            return n

    def entries(self) -> list[dict[str, Any]]:
        with self.database.engine.connect() as connection:
            result = connection.execute(select(feedback).order_by(feedback.c.id))
            return [dict(row._mapping) for row in result]


def _feedback_row(service_id: str, entry: FeedbackEntry, received_at: datetime) -> dict[str, Any]:
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


def _stored_feedback(connection: Connection, service_id: str, cards: list[str]) -> dict[str, list[dict[str, Any]]]:
    stored: dict[str, list[dict[str, Any]]] = {}
    for row in connection.execute(
        select(feedback).where(feedback.c.service_id == service_id, feedback.c.card_uuid.in_(cards))
    ):
        values = dict(row._mapping)
        values["outcome_timestamp"] = as_utc(values["outcome_timestamp"])
        stored.setdefault(row.card_uuid, []).append(values)
    return stored


_FEEDBACK_DETAILS = ("override_system", "override_code", "override_display", "user_comment")


def _same_details(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def suggestions(row: dict[str, Any]) -> list[str]:
        return sorted(json.loads(row["accepted_suggestions"] or "[]"))

    return suggestions(a) == suggestions(b) and all(a[name] == b[name] for name in _FEEDBACK_DETAILS)


def _judge(
    service_id: str, row: dict[str, Any], issued: dict[str, set[str] | None], stored: dict[str, list[dict[str, Any]]]
) -> FeedbackResult:
    """The fate of one entry (see ``FeedbackStore.add``); an entry to store joins ``stored``, so a
    later entry of the same POST is judged against it."""
    card = row["card_uuid"]

    def refused(error: FeedbackError, problem: str) -> FeedbackResult:
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
    value: str | None = getattr(entry.overrideReason.reason, attribute)
    return value
