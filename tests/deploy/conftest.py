"""Fixtures for the deployment tests (real processes come from tests/processes.py)."""

from __future__ import annotations

from postgres import postgres_cluster, postgres_url  # noqa: F401  (for the PostgreSQL CLI tests)
