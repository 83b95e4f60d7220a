"""Alembic migrations of the feedback and audit store (SQLite and PostgreSQL alike).

Run at start-up (``CDS_MIGRATE_ON_START``: by the gunicorn master before it forks, or by
``Store`` in an app built outside gunicorn) or by ``python -m cds_service migrate``.
Configured in code (no alembic.ini): see ``cds_service.store.schema.migrate``.
"""
