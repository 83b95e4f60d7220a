"""Every store test runs twice: on an SQLite file and on a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from postgres import postgres_cluster, postgres_url  # noqa: F401  (session cluster, fresh databases)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database_url(request, tmp_path: Path) -> Callable[[], str]:
    """Factory: the URL of a new, empty database on the backend of this parametrisation."""
    if request.param == "sqlite":
        databases = iter(range(1, 1000))
        return lambda: f"sqlite:///{tmp_path}/store-{next(databases)}.sqlite3"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database_url(new_database_url) -> str:
    return new_database_url()
