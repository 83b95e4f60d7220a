"""Alembic migrations of the feedback and audit store (SQLite and PostgreSQL alike).

Run by ``FeedbackStore`` at start-up (``CDS_MIGRATE_ON_START``) or by ``python -m cds_service
migrate``. Configured in code (no alembic.ini): see ``cds_service.store.migrate``.
"""
