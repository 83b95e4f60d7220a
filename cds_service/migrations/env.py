"""Alembic environment: always called with an open connection by ``cds_service.store.schema.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from cds_service.store.schema import MIGRATION_LOCK_KEY
from cds_service.store.tables import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together: the first migrates, the others wait and then find head,
            # however long that takes (the service's statement_timeout is for its own statements).
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run `python -m cds_service migrate`")
run_migrations_online()
