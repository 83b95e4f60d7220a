"""Faults the prefetch-fallback tests (tests/cds_service/test_cds_prefetch_fallback.py) leave out,
against the service as deployed (gunicorn): after a burst of calls to a hanging FHIR server no
gunicorn thread and no fetch thread is stuck; a huge FHIR answer is read only up to the cap; the
database going down during feedback gives a clear 503, stores nothing half, and heals by itself
(a worker replaced meanwhile boots; the audit rows of hook calls answered meanwhile are written)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from fhir_stub import FhirStub
from hardening_kit import (
    PREFETCH_KEYS,
    SELECT,
    feedback_body,
    gunicorn_service,
    issue_cards,
    sorafenib_call,
    sorafenib_call_to_fetch,
)
from postgres import PostgresCluster, _bindir

BUDGET = 0.5
SLACK = 1.0  # a shared 2-core machine: generous, still far below any stuck-thread symptom


def post_hook(url: str, body: dict, timeout: float = 15) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(f"{url}/cds-services/{SELECT}", json=body, timeout=timeout)
    return response, time.monotonic() - started


@pytest.mark.slow
def test_hanging_fhir_burst_leaves_no_thread_stuck(tmp_path):
    # 2 workers × 2 threads and 4 fetch threads each: a stuck thread would show at once.
    env = {
        "CDS_WORKERS": "2",
        "CDS_THREADS": "2",
        "CDS_FETCH_WORKERS": "4",
        "CDS_FETCH_BUDGET_SECONDS": str(BUDGET),
        "CDS_LOG_LEVEL": "WARNING",
    }
    with FhirStub("hang") as hanging, FhirStub("ok") as healthy, gunicorn_service(tmp_path, **env) as service:
        burst = 16
        with ThreadPoolExecutor(burst) as pool:
            answers = list(
                pool.map(lambda _: post_hook(service.url, sorafenib_call_to_fetch(hanging.url)), range(burst))
            )
        assert [r.status_code for r, _ in answers] == [200] * burst
        assert len(hanging.seen()) >= 4  # the hanging server really was called and held connections

        # Gunicorn threads are free: an ordinary call answers at once...
        response, elapsed = post_hook(service.url, sorafenib_call())
        assert response.status_code == 200 and response.json()["cards"]
        assert elapsed < SLACK, f"normal call after the burst took {elapsed:.2f} s"
        # ...and fetch threads are free: every key is fetched from a healthy server, on both workers.
        for _ in range(4):
            before = len(healthy.seen())
            response, elapsed = post_hook(service.url, sorafenib_call_to_fetch(healthy.url))
            assert response.status_code == 200
            assert len(healthy.seen()) - before == PREFETCH_KEYS, "a fetch thread is still held by the hanging server"
            assert elapsed < BUDGET + SLACK


def test_huge_fhir_answer_is_read_only_up_to_the_cap(tmp_path):
    cap = 256 * 1024
    env = {
        "CDS_WORKERS": "1",
        "CDS_THREADS": "4",
        "CDS_FETCH_MAX_BYTES": str(cap),
        "CDS_FETCH_BUDGET_SECONDS": "3",
        "CDS_LOG_LEVEL": "WARNING",
    }
    with FhirStub("huge", huge_bytes=64 * 1024 * 1024) as huge, gunicorn_service(tmp_path, **env) as service:
        (worker,) = service.worker_pids()
        post_hook(service.url, sorafenib_call())  # warm: everything imported and allocated once
        before = service.rss_mib(worker)
        for _ in range(3):
            response, elapsed = post_hook(service.url, sorafenib_call_to_fetch(huge.url))
            assert response.status_code == 200
            # PREFETCH_KEYS keys × 64 MiB offered: reading them would take far longer and far more memory.
            assert elapsed < 3, f"{elapsed:.2f} s: the answer was read past the cap"
        assert len(huge.seen()) >= PREFETCH_KEYS
        grown = service.rss_mib(worker) - before
        assert grown < 48, f"worker RSS grew by {grown:.0f} MiB for answers capped at {cap // 1024} KiB"


@pytest.fixture
def pausable_postgres():
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL not installed (scripts/test-setup.d/postgresql.sh)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    options = f"-p {cluster.port} -k {cluster.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def pg_ctl(action: str) -> None:
        args = ["pg_ctl", "-D", str(cluster.data), "-w", action]
        if action == "start":
            args += ["-l", str(cluster.root / "log"), "-o", options]
        else:
            args += ["-m", "fast"]
        result = cluster._run(*args)
        assert result.returncode == 0, result.stderr

    cluster.pg_ctl = pg_ctl
    yield cluster
    cluster.stop()


def test_database_down_during_feedback_is_503_nothing_half_written_and_heals(tmp_path, pausable_postgres):
    from sqlalchemy import create_engine, text

    database = pausable_postgres.new_database()
    env = {"CDS_DATABASE_URL": database, "CDS_WORKERS": "2", "CDS_THREADS": "2", "CDS_LOG_LEVEL": "WARNING"}
    url_of = lambda service: f"{service.url}/cds-services/{SELECT}/feedback"  # noqa: E731

    def stored(table: str = "feedback") -> int:
        engine = create_engine(database)
        with engine.connect() as connection:
            count = connection.execute(text(f"select count(*) from {table}")).scalar_one()
        engine.dispose()
        return count

    issue_cards(database, SELECT, ["before-outage", *[f"during-outage-{i}" for i in range(3)]])  # one audit row
    with gunicorn_service(tmp_path, **env) as service:
        assert requests.post(url_of(service), json=feedback_body("before-outage"), timeout=10).status_code == 200
        pausable_postgres.pg_ctl("stop")
        batch = {"feedback": [feedback_body(f"during-outage-{i}")["feedback"][0] for i in range(3)]}
        for _ in range(3):  # both workers, pooled connections and fresh ones
            response = requests.post(url_of(service), json=batch, timeout=30)
            assert response.status_code == 503
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.json()["error"] == "store_unavailable"
            assert "nothing was saved" in response.json()["message"]
        assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 503
        # A worker that dies during the outage is replaced, and its replacement boots without the
        # database (it once checked the schema at boot, failed, and gunicorn shut the service down).
        victim = service.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len([pid for pid in service.worker_pids() if pid != victim]) < 2:
            assert service.process.poll() is None, f"the service stopped: {service.output()[-2000:]}"
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)
        # The hook itself still answers while the audit log cannot be written: on fresh connections,
        # which the kernel spreads over both workers' sockets (a call to the replacement waits for its
        # boot; none of 20 reaching it has odds of 1 in a million).
        for _ in range(20):
            hook = requests.post(f"{service.url}/cds-services/{SELECT}", json=sorafenib_call(), timeout=30)
            assert hook.status_code == 200
        assert service.process.poll() is None and len(service.worker_pids()) == 2

        pausable_postgres.pg_ctl("start")
        assert stored() == 1, "a batch answered 503 left rows behind"
        deadline = time.monotonic() + 15
        while requests.get(f"{service.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the service did not reconnect by itself"
            time.sleep(0.2)
        for _ in range(2):  # the client's retry succeeds, on whichever worker, and is stored once
            assert requests.post(url_of(service), json=batch, timeout=10).status_code == 200
        assert stored() == 4
        # The workers held the audit rows of the calls answered during the outage, and write them now.
        deadline = time.monotonic() + 20  # the writers' next try comes within 5 s
        while (audited := stored("assessment_audit") - 1) < 20:  # - the row issuing the cards
            assert time.monotonic() < deadline, f"{audited} of 20 assessments audited after the outage"
            time.sleep(0.2)
        assert audited == 20
