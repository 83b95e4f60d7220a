"""The assessment audit log: one row per assessed hook call, with the cards it returned.

A row carries ids, codes and timings, a keyed digest of the patient id (``cds_service.patient_key``;
never the id itself), and what the model used and predicted: the inputs (binary markers, AFP and
ALT with units and dates), the primary-resistance probability with its 95% CI, and the second-line
survival estimates per arm. The monitoring job reads them back with ``AuditLog.assessments``.
Pseudonymous, not anonymous: lab values and their dates are personal data under the key's holder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from .database import Database, as_utc, insert_returning_ids, insert_rows
from .tables import assessment_audit, assessment_card

# Ids and codes only: a pattern that no sentence, name or decimal value with units gets through.
AuditKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/|+-]{1,100}$")]
Scenario = Literal["first_line", "second_line", "other"]

_ROWS_PER_STATEMENT = 500  # 17 columns: 8,500 bound values, far below SQLite's and PostgreSQL's limits


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


class LabInput(BaseModel):
    """A lab value as the model used it: converted to the model's unit, with its date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    unit: str = Field(max_length=50)
    comparator: Literal["<", "<=", ">=", ">"] | None = None
    effective: Annotated[str, StringConstraints(pattern=r"^[0-9T:.+Z-]{4,35}$")] | None = None


class ModelInputs(BaseModel):
    """The inputs of the model that ran: each binary marker (None: missing), the AFP and ALT values
    present, the inputs that were missing, and those marginalised over (second line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    markers: dict[AuditKey, bool | None] = Field(default_factory=dict)
    values: dict[AuditKey, LabInput] = Field(default_factory=dict)
    missing: list[AuditKey] = Field(default_factory=list)
    marginalised: list[AuditKey] = Field(default_factory=list)


class ResistanceEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    probability: float = Field(ge=0, le=1)
    ci_low: float = Field(ge=0, le=1)
    ci_high: float = Field(ge=0, le=1)


class SurvivalPointEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    survival: float | None
    low: float | None
    high: float | None


class EndpointEstimate(BaseModel):
    """One arm's estimate for one endpoint: the median (months) and survival at given months."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median_months: float | None
    median_ci: tuple[float | None, float | None]
    at_months: dict[int, SurvivalPointEstimate]


class AssessmentAudit(BaseModel):
    """What governance and monitoring may see of one hook call: no patient id, no name."""

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
    patient_key_id: AuditKey | None = None
    patient_digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    scenario: Scenario | None = None
    inputs: ModelInputs | None = None
    resistance: ResistanceEstimate | None = None
    survival: dict[AuditKey, dict[AuditKey, EndpointEstimate]] = Field(
        default_factory=dict, description="Second line: arm (tki, tki_pd1) → endpoint (pfs, os) → estimate."
    )

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


@dataclass(frozen=True)
class AuditedAssessment:
    """One audited assessment as the monitoring job reads it (rows older than revision 0006 carry
    None and empty mappings for what they did not record)."""

    recorded_at: datetime
    service_id: str
    hook_instance: str
    model_version: str | None
    scenario: str | None
    patient_key_id: str | None
    patient_digest: str | None
    inputs: Mapping[str, Any]  # markers, values (with unit and date), missing, marginalised
    resistance_probability: float | None
    survival: Mapping[str, Any]  # arm → endpoint → median_months, median_ci, at_months → {survival, low, high}
    resistance_ci: tuple[float, float] | None = None
    outcome: str = "cards"


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.database = database

    def record_assessment(self, record: AssessmentAudit) -> None:
        """Append one assessment to the audit log. Raises ``StoreUnavailable``."""
        self.record_assessments([record])

    def record_assessments(self, records: Sequence[AssessmentAudit]) -> None:
        """Append assessments to the audit log in one transaction: all of them or none (a commit
        costs milliseconds on SQLite, so the audit writer batches). Per 500 rows, a look-up of
        their keys and, on SQLite, two multi-row statements (see ``database._sqlite_insert_rows``).
        Raises ``StoreUnavailable``.

        Idempotent: rows whose ``audit_id`` is stored already are skipped. A commit whose
        acknowledgement is lost looks like an outage, and the writer sends that batch again."""
        if not records:
            return
        with self.database.writing() as connection:
            for start in range(0, len(records), _ROWS_PER_STATEMENT):
                chunk = _not_stored_yet(connection, records[start : start + _ROWS_PER_STATEMENT])
                if not chunk:
                    continue
                ids = insert_returning_ids(connection, assessment_audit, [_audit_row(record) for record in chunk])
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
                    insert_rows(connection, assessment_card, cards)

    def records(self, since: datetime | None = None) -> list[AssessmentAudit]:
        """The audit rows as written, oldest first (tests and tools; the monitoring job streams
        ``assessments`` instead)."""
        with self.database.engine.connect() as connection:
            rows = connection.execute(
                select(assessment_audit).where(in_period(since, None)).order_by(assessment_audit.c.id)
            ).all()
            cards = _cards(connection, since, None)
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
                recorded_at=as_utc(row.recorded_at),
                patient_key_id=row.patient_key_id,
                patient_digest=row.patient_digest,
                scenario=row.scenario,
                inputs=ModelInputs.model_validate_json(row.model_inputs) if row.model_inputs else None,
                resistance=_resistance(row),
                survival=json.loads(row.survival or "{}"),
            )
            for row in rows
        ]

    def assessments(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[AuditedAssessment]:
        """The assessments recorded from ``since`` up to, not including, ``until``, oldest first,
        read in pages of 500 rows: the monitoring job goes through months of them."""
        audit = assessment_audit
        with self.database.engine.connect() as connection:
            result = connection.execution_options(yield_per=500).execute(
                select(audit).where(in_period(since, until)).order_by(audit.c.recorded_at, audit.c.id)
            )
            for row in result:
                resistance = _resistance(row)
                yield AuditedAssessment(
                    recorded_at=as_utc(row.recorded_at),
                    service_id=row.service_id,
                    hook_instance=row.hook_instance,
                    model_version=row.model_version,
                    scenario=row.scenario,
                    patient_key_id=row.patient_key_id,
                    patient_digest=row.patient_digest,
                    inputs=json.loads(row.model_inputs or "{}"),
                    resistance_probability=row.resistance_probability,
                    survival=json.loads(row.survival or "{}"),
                    resistance_ci=(resistance.ci_low, resistance.ci_high) if resistance else None,
                    outcome=row.outcome,
                )


def in_period(since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    """Audit rows recorded from ``since`` up to, not including, ``until`` (either may be open)."""
    recorded = assessment_audit.c.recorded_at
    return and_(
        recorded >= since.astimezone(UTC) if since is not None else recorded.is_not(None),
        recorded < until.astimezone(UTC) if until is not None else recorded.is_not(None),
    )


def _cards(connection: Connection, since: datetime | None, until: datetime | None) -> dict[int, list[AuditCard]]:
    """The cards of the assessments in the period, by assessment row id."""
    cards: dict[int, list[AuditCard]] = {}
    for row in connection.execute(
        select(assessment_card)
        .join(assessment_audit, assessment_card.c.assessment_id == assessment_audit.c.id)
        .where(in_period(since, until))
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
    return cards


def _resistance(row: Any) -> ResistanceEstimate | None:
    if row.resistance_probability is None:
        return None
    return ResistanceEstimate(
        probability=row.resistance_probability, ci_low=row.resistance_ci_low, ci_high=row.resistance_ci_high
    )


def _not_stored_yet(connection: Connection, records: Sequence[AssessmentAudit]) -> list[AssessmentAudit]:
    """The records whose ``audit_id`` is not in the table yet (one indexed look-up)."""
    keys = [str(record.audit_id) for record in records if record.audit_id is not None]
    stored = set(
        connection.execute(select(assessment_audit.c.audit_id).where(assessment_audit.c.audit_id.in_(keys))).scalars()
    )
    return [record for record in records if str(record.audit_id) not in stored]


def _audit_row(record: AssessmentAudit) -> dict[str, Any]:
    resistance = record.resistance
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
        "patient_key_id": record.patient_key_id,
        "patient_digest": record.patient_digest,
        "scenario": record.scenario,
        "resistance_probability": resistance.probability if resistance else None,
        "resistance_ci_low": resistance.ci_low if resistance else None,
        "resistance_ci_high": resistance.ci_high if resistance else None,
        "model_inputs": record.inputs.model_dump_json() if record.inputs else None,
        "survival": json.dumps(_survival_json(record)) if record.survival else None,
    }


def _survival_json(record: AssessmentAudit) -> dict[str, dict[str, Any]]:
    return {
        arm: {endpoint: estimate.model_dump(mode="json") for endpoint, estimate in by_endpoint.items()}
        for arm, by_endpoint in record.survival.items()
    }
