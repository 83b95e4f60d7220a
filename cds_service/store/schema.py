"""Schema migrations (Alembic, ``cds_service/migrations``): applied at start-up or by
``python -m cds_service migrate``; a worker that must not migrate checks the revision instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from sqlalchemy.engine import Connection, Engine

from hcc_evidence.errors import HccCdsError

from .database import create_store_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = "cds_service:migrations"
MIGRATION_LOCK_KEY = 7_431_195_203  # PostgreSQL advisory lock: any constant the same for every replica

SchemaStep = Literal["migrate", "check", "as-is"]


class SchemaOutdated(HccCdsError):
    """The database schema is not at the revision this code needs (run ``python -m cds_service migrate``)."""


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # imported when needed: a worker never migrates

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def prepare_schema(target: Engine | str, *, migrate_schema: bool) -> None:
    """Migrate the schema to head, or only check that it is there (SchemaOutdated if not)."""
    if migrate_schema:
        migrate(target)
        return
    with _engine_for(target) as engine:
        current, head = schema_revision(engine), head_revision()
        if current != head:
            raise SchemaOutdated(
                f"database schema is at {current or 'nothing'}, this service needs {head}: "
                "run `python -m cds_service migrate`"
            )


def migrate(target: Engine | str, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` (idempotent; safe for replicas starting together).
    Returns the revision reached."""
    from alembic import command

    with _engine_for(target) as engine:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
        return schema_revision(engine)


@contextmanager
def _engine_for(target: Engine | str) -> Iterator[Engine]:
    """The engine given, or one for the URL given that keeps no connection afterwards (the gunicorn
    master prepares the schema before forking: its workers must not inherit a connection)."""
    if not isinstance(target, str):
        yield target
        return
    engine = create_store_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()
