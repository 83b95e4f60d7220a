"""Bad input and security: the SSRF guard on fhirServer, no tokens or PHI in the logs of the
service as deployed, the OpenAPI description covers every endpoint, and a short property-based
fuzz run from it (the ≥ 10,000-request run is ``python tests/hardening/fuzz.py``)."""

from __future__ import annotations

import ipaddress

import pytest
import requests
from fhir_stub import FhirStub
from fuzz import fuzz
from hardening_kit import (
    PREFETCH_KEYS,
    SELECT,
    SORAFENIB,
    afp,
    alt,
    full_prefetch,
    gunicorn_service,
    hcc_hbv_conditions,
    hook_request,
    irrelevant_call,
    medication_request,
    sorafenib_call_to_fetch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.ssrf import FhirServerPolicy, FhirServerRefused

PRODUCTION = FhirServerPolicy(allowlist=("https://fhir.hospital.example.org/r4",), production=True)
DEMO = FhirServerPolicy()


def hook(server, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/cds-services/{SELECT}", json=body, timeout=15)


def assert_refused_naming_fhir_server(response: requests.Response, token: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "fhir_server_not_allowed"
    assert [d["field"] for d in body["details"]] == ["fhirServer"]
    assert token not in response.text


# -- SSRF: over HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data",  # AWS/GCP/Azure instance metadata
        "http://[fe80::1]/fhir",
        "http://[::ffff:169.254.169.254]/fhir",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://0.0.0.0:8080/fhir",
        "http://user:secret@127.0.0.1/fhir",
    ],
)
def test_metadata_and_odd_addresses_are_refused_even_in_demo(live_server, target):
    server = live_server()
    for body in (sorafenib_call_to_fetch(target, token="tok-ssrf-1"), irrelevant_call() | {"fhirServer": target}):
        assert_refused_naming_fhir_server(hook(server, body), "tok-ssrf-1")


def test_allowlist_is_enforced_and_the_other_server_never_sees_the_token(live_server):
    with FhirStub("ok") as allowed, FhirStub("ok") as other:
        server = live_server(fhir_server_allowlist=[allowed.url])
        ok = hook(server, sorafenib_call_to_fetch(allowed.url, token="tok-allowed"))
        assert ok.status_code == 200 and allowed.seen()
        refused = hook(server, sorafenib_call_to_fetch(other.url, token="tok-other"))
        assert_refused_naming_fhir_server(refused, "tok-other")
        sibling = hook(server, sorafenib_call_to_fetch(allowed.url + "-evil", token="tok-other"))
        assert_refused_naming_fhir_server(sibling, "tok-other")
        assert other.seen() == []
        assert {r.authorization for r in allowed.seen()} == {"Bearer tok-allowed"}


def test_loopback_is_allowed_in_demo_for_local_harnesses(live_server):
    with FhirStub("ok") as stub:
        assert hook(live_server(), sorafenib_call_to_fetch(stub.url)).status_code == 200
        assert len(stub.seen()) == PREFETCH_KEYS


def test_next_page_on_another_host_and_redirects_are_not_followed():
    from cds_service.fhir_client import FhirClient

    client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
    assert all(adapter.max_retries.total == 0 for adapter in client.session.adapters.values())
    with FhirStub("redirect", redirect_to="http://169.254.169.254") as redirecting:
        outcome = client.fetch_all(redirecting.url, {"labs": "Observation?patient=p1"}, "tok", 2.0)["labs"]
    assert outcome.resource is None and "redirected" in outcome.error


# -- SSRF: the policy's rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://fhir.hospital.example.org/r4", "https"),
        ("https://fhir.hospital.example.org/r4x", "allowlist"),
        ("https://fhir.hospital.example.org/", "allowlist"),
        ("https://fhir.hospital.example.org:8443/r4", "allowlist"),
        ("https://evil.example/r4", "allowlist"),
        ("https://fhir.hospital.example.org.evil.example/r4", "allowlist"),
        ("https://x@fhir.hospital.example.org/r4", "credentials"),
        ("ftp://fhir.hospital.example.org/r4", "http(s)"),
    ],
)
def test_production_rules(url, reason):
    with pytest.raises(FhirServerRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        PRODUCTION.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://fhir.hospital.example.org/r4",
        "https://fhir.hospital.example.org/r4/",
        "https://FHIR.hospital.example.org:443/r4/Patient",
    ],
)
def test_production_allows_the_allowlisted_base_and_below(url):
    PRODUCTION.check_url(url)


def test_loopback_is_refused_in_production():
    policy = FhirServerPolicy(allowlist=("https://127.0.0.1/fhir", "https://localhost/fhir"), production=True)
    for url in ("https://127.0.0.1/fhir", "https://localhost/fhir"):
        with pytest.raises(FhirServerRefused, match="loopback"):
            policy.check_url(url)


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses(network="169.254.0.0/16") | st.ip_addresses(network="fe80::/10"), st.booleans())
def test_every_link_local_address_is_refused(address, production):
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    policy = FhirServerPolicy(production=production)
    with pytest.raises(FhirServerRefused):
        policy.check_url(f"https://{host}/fhir")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"\Ahttps?://[^\s]{0,40}\Z", fullmatch=True))
def test_the_policy_refuses_or_passes_but_never_crashes(url):
    for policy in (DEMO, PRODUCTION):
        try:
            policy.check_url(url)
        except FhirServerRefused:
            pass


# -- logs -----------------------------------------------------------------------------------------

ACCESS_TOKEN = "fhir-access-token-Zq81kVv0pX"
JWT = "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2VociJ9.c2lnbmF0dXJlLXZhbHVl"
PATIENT_ID = "pt-ossian-4417"
PATIENT_NAME = ("Ossian", "Featherstonehaugh")
AFP_VALUE = 8675.309


def test_logs_carry_no_token_and_no_patient_data(tmp_path):
    patient_resource = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "gender": "male",
        "birthDate": "1958-02-03",
        "name": [{"given": [PATIENT_NAME[0]], "family": PATIENT_NAME[1]}],
    }
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-1", patient=PATIENT_ID)
    prefetch = full_prefetch(
        [
            afp(AFP_VALUE, "2026-11-10", patient=PATIENT_ID),
            alt(65, "2026-11-12", patient=PATIENT_ID),
            *hcc_hbv_conditions(PATIENT_ID),
        ],
        patient=PATIENT_ID,
    )
    prefetch["patient"] = patient_resource
    with FhirStub("500") as failing, gunicorn_service(tmp_path, CDS_LOG_LEVEL="DEBUG") as service:
        headers = {"Authorization": f"Bearer {JWT}"}
        calls = [
            hook_request("order-select", [draft], prefetch=prefetch, patient=PATIENT_ID),
            # nothing prefetched: the token travels to a FHIR server that fails
            hook_request("order-select", [draft], patient=PATIENT_ID, fhir_server=failing.url, token=ACCESS_TOKEN),
            # invalid: the 400 path with the token and patient data in the body
            hook_request(
                "order-select",
                [draft],
                prefetch={"patient": "x"},
                patient=PATIENT_ID,
                fhir_server=failing.url,
                token=ACCESS_TOKEN,
            ),
            # a refused fhirServer with the token
            hook_request(
                "order-select", [draft], patient=PATIENT_ID, fhir_server="http://169.254.169.254/", token=ACCESS_TOKEN
            ),
        ]
        statuses = [
            requests.post(
                f"{service.url}/cds-services/{SELECT}?patient={PATIENT_ID}", json=body, headers=headers, timeout=15
            ).status_code
            for body in calls
        ]
        assert statuses == [200, 200, 400, 400]
        assert failing.seen() and {r.authorization for r in failing.seen()} == {f"Bearer {ACCESS_TOKEN}"}
        log = service.output()
    assert '"logger": "cds_service.access"' in log  # the access log was on: the check below means something
    for secret in (ACCESS_TOKEN, JWT, JWT.split(".")[1], PATIENT_ID, *PATIENT_NAME, str(AFP_VALUE), "1958-02-03"):
        assert secret not in log, f"{secret!r} is in the service's logs"


# -- OpenAPI and fuzzing --------------------------------------------------------------------------


def test_openapi_describes_every_endpoint(live_server):
    server = live_server()
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    described = {path.replace("{service_id}", "<service_id>") for path in document["paths"]}
    described |= {"/cds-services/<service_id>"}  # described per service: one path each
    routes = {
        rule.rule
        for rule in server.app.url_map.iter_rules()
        if not rule.rule.startswith(("/smart", "/static")) and rule.rule != "/openapi.yaml"
    }
    assert routes <= described, routes - described
    for service_id in server.runtime.services:
        assert f"/cds-services/{service_id}" in document["paths"]
    yaml_text = requests.get(f"{server.url}/openapi.yaml", timeout=10).text
    assert yaml_text.startswith("openapi: 3.1")


@pytest.mark.slow
def test_fuzzing_from_the_openapi_description_finds_no_5xx_and_only_json_errors(tmp_path):
    with gunicorn_service(tmp_path, CDS_LOG_LEVEL="WARNING") as service:
        result = fuzz(service.url, max_examples=15, seed=8, workdir=tmp_path)
    assert result.total >= 300, result.output[-2000:]
    assert result.server_errors == 0, result.output[-3000:]
    assert result.bad_errors == []
    assert result.exit_code == 0, result.output[-3000:]
    print(f"fuzzing: {result.total} requests, by status {dict(result.by_status)}")


@pytest.mark.parametrize("instant", ["0001-01-01T03:21:24.07808+09:33", "9999-12-31T23:00:00-05:00"])
def test_feedback_instant_with_no_utc_date_is_400_not_500(live_server, instant):
    """Found by the fuzzer: an offset pushing the instant outside datetime's range crashed storage."""
    server = live_server()
    body = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": instant}]}
    response = requests.post(f"{server.url}/cds-services/{SELECT}/feedback", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "feedback.0.outcomeTimestamp"
