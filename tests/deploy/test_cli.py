"""``python -m cds_service migrate`` and ``audit-report`` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from processes import ROOT, free_port

from cds_service.store import AssessmentAudit, AuditCard, Store, head_revision


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CDS_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/feedback.sqlite3"
    return request.getfixturevalue("postgres_url")()


def test_migrate_command_is_idempotent(database_url):
    for _ in range(2):
        result = cli("migrate", database_url=database_url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"database schema at revision {head_revision()}"


def test_audit_report_needs_a_migrated_database(tmp_path):
    result = cli("audit-report", database_url=f"sqlite:///{tmp_path}/empty.sqlite3")
    assert result.returncode == 2
    assert "python -m cds_service migrate" in result.stderr


@pytest.mark.parametrize(
    ("command", "status", "says"),
    [
        ("audit-report", 2, "audit-report: cannot read the database"),
        ("migrate", 1, "migrate: cannot migrate the database"),
    ],
)
def test_cli_with_the_database_unreachable_says_so_in_one_line(command, status, says):
    result = cli(command, database_url="postgresql+psycopg://cds:s3cret-pw@127.0.0.1:1/cds")
    assert result.returncode == status
    assert result.stderr.startswith(f"{says}: connection failed")
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr


def serve(database_url: str, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CDS_DATABASE_URL": database_url, "HOST": "127.0.0.1", "PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "cds_service", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_serve_refuses_an_unmigrated_database_before_starting_workers(tmp_path):
    result = serve(f"sqlite:///{tmp_path}/empty.sqlite3", CDS_MIGRATE_ON_START="false")
    assert result.returncode == 1
    assert "database schema is at nothing" in result.stderr and "python -m cds_service migrate" in result.stderr
    assert "Booting worker" not in result.stderr


def test_serve_with_the_database_unreachable_says_so_in_one_line_without_the_password():
    result = serve("postgresql+psycopg://cds:s3cret-pw@127.0.0.1:1/cds")
    assert result.returncode == 1
    assert "cannot prepare the database schema at start: connection failed" in result.stderr
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr
    assert "Booting worker" not in result.stderr


def test_audit_report_prints_counts_timings_and_rates(database_url):
    store = Store(database_url)
    store.audit.record_assessment(
        AssessmentAudit(
            hook_instance=uuid.uuid4(),
            service_id="hcc-systemic-therapy-select",
            hook="order-select",
            outcome="cards",
            timing_ms=120,
            cards=[AuditCard(uuid="card-1", indicator="warning", kind="sorafenib-resistance")],
            recorded_at=datetime(2026, 11, 20, tzinfo=UTC),
        )
    )
    text = cli("audit-report", "--since", "2026-11-01", database_url=database_url)
    assert text.returncode == 0, text.stderr
    assert "Assessments since 2026-11-01: 1" in text.stdout
    assert "hcc-systemic-therapy-select: cards 1" in text.stdout
    assert "p50=120 p95=120" in text.stdout
    assert "sorafenib-resistance / warning: 1, 0 (0%), 0 (0%)" in text.stdout
    later = json.loads(cli("audit-report", "--since", "2026-11-21", "--json", database_url=database_url).stdout)
    assert later["assessments"] == 0


def test_serve_gives_all_workers_one_smart_session_secret(monkeypatch):
    from cds_service.__main__ import _one_session_secret_for_all_workers
    from cds_service.settings import Settings

    monkeypatch.delenv("CDS_SMART_SESSION_SECRET", raising=False)
    shared = _one_session_secret_for_all_workers(Settings(workers=3))
    assert len(shared.smart_session_secret.get_secret_value()) >= 48
    assert _one_session_secret_for_all_workers(Settings(workers=1)).smart_session_secret is None
    given = Settings(workers=3, smart_session_secret="from-the-secret")
    assert _one_session_secret_for_all_workers(given) is given


def test_a_worker_app_starts_with_its_start_up_objects_frozen_out_of_the_collector(tmp_path):
    import gc

    from cds_service.__main__ import load_worker_app
    from cds_service.settings import Settings

    assert gc.get_freeze_count() == 0
    try:
        app = load_worker_app(Settings(database_url=f"sqlite:///{tmp_path}/feedback.sqlite3"))
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert frozen > 100_000  # the model, terminology and schemas: a full collection skips them
    assert app.test_client().get("/healthz").status_code == 200


def test_audit_report_takes_a_period_and_splits_by_model_version(database_url):
    store = Store(database_url)
    for day, version in ((5, "2025.1"), (15, "2026.1"), (25, "2026.1")):
        store.audit.record_assessment(
            AssessmentAudit(
                hook_instance=uuid.uuid4(),
                service_id="hcc-systemic-therapy-select",
                hook="order-select",
                model_version=version,
                outcome="no_cards",
                timing_ms=40,
                missing_data=["afp"],
                recorded_at=datetime(2026, 11, day, 23, 59, tzinfo=UTC),
            )
        )
    text = cli(
        "audit-report",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-15",
        "--by-model-version",
        database_url=database_url,
    )
    assert text.returncode == 0, text.stderr
    assert "Assessments since 2026-11-01 up to 2026-11-15: 2" in text.stdout  # the last day is included
    assert "  afp: 2" in text.stdout
    assert "  2025.1: 1 (no_cards 1)" in text.stdout and "  2026.1: 1 (no_cards 1)" in text.stdout
    report = json.loads(cli("audit-report", "--until", "2026-11-14", "--json", database_url=database_url).stdout)
    assert (report["assessments"], report["missing_data"], report["by_model_version"]) == (1, {"afp": 1}, None)
