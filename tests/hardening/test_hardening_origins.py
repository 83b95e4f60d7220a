"""Who the service believes it is, and which browsers may read it (issue 22, items 6 and 9).

Production never derives the JWT audience from the Host header (a proxy or an attacker sets it),
so it needs its public URL; browsers get CORS headers only from origins the hospital lists, and
never for /metrics."""

from __future__ import annotations

import pytest
import requests
from pydantic import ValidationError

from cds_service.settings import Settings

SANDBOX = "https://sandbox.cds-hooks.org"
PRODUCTION = {
    "environment": "production",
    "fhir_server_allowlist": ["https://fhir.hospital.example.org/r4"],
    "public_base_url": "https://cds.hospital.example.org",
    "database_url": "sqlite://",
    "audit_patient_keys": {"test-2026": "test-only-patient-key-of-at-least-32-bytes"},
}


@pytest.mark.parametrize("public_base_url", [None, "", "http://cds.hospital.example.org"])
def test_production_refuses_to_start_without_an_https_public_url(public_base_url):
    with pytest.raises(ValidationError, match="CDS_PUBLIC_BASE_URL"):
        Settings(**{**PRODUCTION, "public_base_url": public_base_url})


def test_production_refuses_every_origin():
    with pytest.raises(ValidationError, match="every browser origin"):
        Settings(**PRODUCTION, cors_origins=["*"])


def test_production_allows_no_browser_origin_unless_listed():
    assert Settings(**PRODUCTION).allowed_origins == []
    assert Settings(**PRODUCTION, cors_origins=[SANDBOX]).allowed_origins == [SANDBOX]
    assert Settings(database_url="sqlite://").allowed_origins == ["*"]  # demo: the public sandbox works


def _get(server, path: str, origin: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers={"Origin": origin}, timeout=10)


def test_listed_origin_gets_cors_and_others_do_not(live_server):
    server = live_server(cors_origins=[SANDBOX])
    assert _get(server, "/cds-services", SANDBOX).headers["Access-Control-Allow-Origin"] == SANDBOX
    evil = _get(server, "/cds-services", "https://evil.example")
    assert "Access-Control-Allow-Origin" not in evil.headers


@pytest.mark.parametrize("cors_origins", [None, ["https://sandbox.cds-hooks.org"]])
def test_metrics_are_never_exposed_to_browsers(live_server, cors_origins):
    server = live_server(cors_origins=cors_origins)
    response = _get(server, "/metrics", SANDBOX)
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
    preflight = requests.options(
        f"{server.url}/metrics",
        headers={"Origin": SANDBOX, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert _get(server, "/cds-services", SANDBOX).headers["Access-Control-Allow-Origin"] in ("*", SANDBOX)
