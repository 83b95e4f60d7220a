"""Metrics at /metrics, JSON logs with a request id, and no tokens or PHI in those logs."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
import requests
from processes import ROOT, free_port, serving

from cds_service.observability import JsonFormatter, observe_cards, observe_fetch, scrub, set_model_version

TOKEN = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXZhbHVl"
SERVICE = "hcc-systemic-therapy-select"


@pytest.fixture
def json_log():
    """Everything logged during the test, as parsed JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def hook_request() -> dict:
    return {
        "hook": "order-select",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "http://127.0.0.1:9/fhir",
        "fhirAuthorization": {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        },
        "context": {
            "userId": "Practitioner/123",
            "patientId": "pat-42",
            "draftOrders": {"resourceType": "Bundle", "entry": []},
        },
        "prefetch": {"patient": {"resourceType": "Patient", "id": "pat-42", "name": [{"family": "Doe-Smith"}]}},
    }


def test_request_id_is_honoured_or_generated_and_logged(server, json_log):
    given = requests.get(f"{server.url}/cds-services", headers={"X-Request-ID": "ehr-req-0001"}, timeout=5)
    assert given.headers["X-Request-ID"] == "ehr-req-0001"
    made = requests.get(f"{server.url}/cds-services", timeout=5).headers["X-Request-ID"]
    hostile = requests.get(f"{server.url}/cds-services", headers={"X-Request-ID": 'x" ,{evil}'}, timeout=5)
    assert len(made) == 32 and hostile.headers["X-Request-ID"] not in ("", 'x" ,{evil}')
    access = [e for e in json_log() if e["logger"] == "cds_service.access"]
    assert [e["request_id"] for e in access] == ["ehr-req-0001", made, hostile.headers["X-Request-ID"]]
    assert access[0] | {"duration_ms": 0} == access[0] | {
        "method": "GET",
        "path": "/cds-services",
        "status": 200,
        "duration_ms": 0,
    }


def test_logs_carry_no_token_and_no_patient_data(server, json_log):
    requests.post(
        f"{server.url}/cds-services/{SERVICE}?patient=pat-42",
        json=hook_request(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=15,
    )
    logging.getLogger("cds_service.test").warning("calling with Authorization: Bearer %s", TOKEN)
    text = json.dumps(json_log())
    for secret in (TOKEN, TOKEN.split(".")[1], "Doe-Smith", "patient=pat-42"):
        assert secret not in text


def test_scrub_removes_credentials():
    assert scrub(f"Bearer {TOKEN}") == "Bearer [redacted]"
    assert TOKEN not in scrub(f"token={TOKEN}")
    assert scrub("postgresql+psycopg://cds:s3cr3t@db:5432/x") == "postgresql+psycopg://cds:[redacted]@db:5432/x"
    assert "hunter2" not in scrub('{"password": "hunter2"}')
    assert "hunter2" not in scrub('{"PassWord": "hunter2"}')
    assert scrub(f"jwt {TOKEN}") == "jwt [redacted-jwt]"
    assert scrub("GET /cds-services 200") == "GET /cds-services 200"


def test_metrics_count_requests_fetches_cards_and_model(server):
    requests.get(f"{server.url}/cds-services", timeout=5)
    requests.post(f"{server.url}/cds-services/no-such-service", json={}, timeout=5)
    observe_fetch("labs", ok=False)
    observe_cards(SERVICE, ["warning", "info", "bogus"])
    set_model_version("test-1")
    response = requests.get(f"{server.url}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert 'cds_http_requests_total{endpoint="/cds-services",service_id="-",status="200"}' in text
    assert 'service_id="unknown",status="404"' in text  # unknown ids do not become labels
    assert 'cds_http_request_duration_seconds_bucket{endpoint="/cds-services"' in text
    assert 'cds_fetch_fallbacks_total{key="labs",result="failed"}' in text
    assert f'cds_cards_total{{indicator="other",service_id="{SERVICE}"}}' in text
    assert 'cds_model_info{version="test-1"} 1.0' in text


def test_gunicorn_workers_share_metrics_and_log_json(tmp_path):
    env = {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "CDS_WORKERS": "2",
        "CDS_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    port = free_port()
    command = [sys.executable, "-m", "cds_service", "serve"]
    with serving(command, env=env, cwd=ROOT, log_path=tmp_path / "log", port=port, drop_env=("PYTHONPATH",)) as service:
        for _ in range(20):
            requests.get(f"{service.url}/cds-services", headers={"Connection": "close"}, timeout=5)
        text = requests.get(f"{service.url}/metrics", timeout=5).text
        served = float(
            next(
                line
                for line in text.splitlines()
                if line.startswith('cds_http_requests_total{endpoint="/cds-services"')
            ).rsplit(" ", 1)[1]
        )
        assert served == 20
        pids = {p.name.rsplit("_", 1)[-1] for p in (tmp_path / "metrics").glob("counter_*.db")}
    records = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)
    assert sum(r["logger"] == "cds_service.access" for r in records) >= 21
    assert not [line for line in service.output().splitlines() if line.strip() and not line.startswith("{")]
    assert len(pids) >= 1


def test_a_second_instance_on_a_taken_port_exits_instead_of_sharing_it(tmp_path):
    # Workers listen with SO_REUSEPORT; without the start-up check a second instance would
    # silently take half of the first one's connections.
    env = {"CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3", "CDS_WORKERS": "1"}
    port = free_port()
    command = [sys.executable, "-m", "cds_service", "serve"]
    with serving(command, env=env, cwd=ROOT, log_path=tmp_path / "first.log", port=port, drop_env=("PYTHONPATH",)):
        second = subprocess.run(
            command,
            env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in second.stderr
