"""The tables of the feedback and audit store, as the newest migration leaves them."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

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

# The columns from patient_key_id on came with revision 0006 and are NULL on older rows. What a
# report filters or joins on has a typed column; the nested inputs and survival estimates are JSON.
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
    Column("patient_key_id", String(100), nullable=True),  # the PatientKeyer secret's id
    Column("patient_digest", String(64), nullable=True, index=True),  # HMAC-SHA256 hex, never the id
    Column("scenario", String(20), nullable=True),  # first_line, second_line, other
    Column("resistance_probability", Float, nullable=True),
    Column("resistance_ci_low", Float, nullable=True),
    Column("resistance_ci_high", Float, nullable=True),
    Column("model_inputs", Text, nullable=True),  # JSON object: markers and values as the model used them
    Column("survival", Text, nullable=True),  # JSON object: arm → endpoint → medians and survival at months
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
