"""Feedback and audit persistence over one database (SQLAlchemy Core; SQLite by default,
PostgreSQL in production), one class per responsibility:

- ``feedback.FeedbackStore``: CDS Hooks feedback, judged against the cards the audit shows issued;
- ``replay.JwtReplayStore``: a JWT id's first use, shared by every worker and replica;
- ``audit_log.AuditLog``: the assessment audit log (written by ``cds_service.audit.AuditWriter``,
  read back by the monitoring job through ``AuditLog.assessments``);
- ``reports.AuditReports``: governance figures over the audit log and the feedback;
- ``schema``: Alembic migrations (``cds_service/migrations``).

``Store`` opens the database once and hands each part the same engines.
"""

from __future__ import annotations

from .audit_log import AssessmentAudit, AuditCard, AuditedAssessment, AuditLog, ModelInputs
from .database import Database, StoreUnavailable
from .feedback import FeedbackResult, FeedbackStore
from .replay import JwtReplayStore
from .reports import AuditReport, AuditReports
from .schema import SchemaOutdated, SchemaStep, head_revision, migrate, prepare_schema, schema_revision

__all__ = [
    "AssessmentAudit",
    "AuditCard",
    "AuditLog",
    "AuditReport",
    "AuditReports",
    "AuditedAssessment",
    "Database",
    "FeedbackResult",
    "FeedbackStore",
    "JwtReplayStore",
    "ModelInputs",
    "SchemaOutdated",
    "Store",
    "StoreUnavailable",
    "head_revision",
    "migrate",
    "prepare_schema",
    "schema_revision",
]


class Store:
    """The service's database, one part per responsibility over the same engines."""

    def __init__(self, url: str, *, schema: SchemaStep = "migrate", statement_timeout: bool = True) -> None:
        """``schema``: bring the database schema to head, check that it is there (SchemaOutdated if
        not), or take it as it is where the caller has done either already. A gunicorn worker takes
        it as is (its master prepared it once, before forking) and so boots without the database:
        one replaced during a database outage starts and answers hooks.

        ``statement_timeout``: see ``Database``."""
        self.database = Database(url, statement_timeout=statement_timeout)
        if schema != "as-is":
            prepare_schema(self.database.engine, migrate_schema=schema == "migrate")
        self.feedback = FeedbackStore(self.database)
        self.replays = JwtReplayStore(self.database)
        self.audit = AuditLog(self.database)
        self.reports = AuditReports(self.database)

    def ping(self) -> bool:
        return self.database.ping()
