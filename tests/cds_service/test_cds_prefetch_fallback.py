"""Prefetch fallback against a real FHIR stub server on loopback (tests/fhir_stub.py).

The assertions are about behaviour that stays true when the pipeline starts returning cards: a
misbehaving FHIR server costs at most the fetch budget, the EHR's access token is presented,
what the EHR sent is never fetched again, and 412 only when there is no way to get required data.
"""

from __future__ import annotations

import time

import pytest
import requests
from cds_testkit import SIGN_SERVICE, sorafenib_order, with_fhir_server
from fhir_stub import BEHAVIOURS, FhirStub

from cds_service.fhir_client import FhirClient
from cds_service.prefetch import render, resolve
from cds_service.schemas import HookRequest

BUDGET = 0.5
SLACK = 0.5
# For tests that check *which* keys were fetched from a healthy server: generous, so a loaded CI
# machine cannot turn "not fetched in time" into a false "not fetched at all".
OK_BUDGET = 5.0
TOKEN = "stub-access-token-7f3a"
PATIENT = "hcc-patient-1"
FAILURES = [b for b in BEHAVIOURS if b != "ok"]


@pytest.fixture
def budget_server(live_server):
    return live_server(fetch_budget_seconds=BUDGET, fetch_max_bytes=256 * 1024)


@pytest.fixture
def ok_server(live_server):
    return live_server(fetch_budget_seconds=OK_BUDGET)


def templates(server, service_id: str = SIGN_SERVICE):
    return list(server.runtime.services[service_id].templates)


def expected_queries(server, keys=None) -> dict[str, str]:
    context = {"patientId": PATIENT, "userId": "Practitioner/onc-1", "encounterId": "enc-1"}
    return {t.key: render(t.query, context) for t in templates(server) if keys is None or t.key in keys}


def call(server, body: dict) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(f"{server.url}/cds-services/{SIGN_SERVICE}", json=body, timeout=15)
    return response, time.monotonic() - started


def stub_options(behaviour: str, other_host: FhirStub | None = None) -> dict:
    options: dict = {"slow_seconds": BUDGET + 2.0, "huge_bytes": 1024 * 1024}
    if behaviour == "redirect" and other_host is not None:
        options["redirect_to"] = other_host.url.replace("127.0.0.1", "localhost")
    return options


# --- end to end over HTTP ------------------------------------------------------------------------


def test_ok_server_is_asked_every_missing_key_with_the_ehr_token(ok_server, fhir_stub):
    stub = fhir_stub("ok")
    response, elapsed = call(ok_server, with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN))
    assert response.status_code == 200, response.text
    assert "cards" in response.json()
    seen = stub.seen()
    assert sorted(r.relative_url for r in seen) == sorted(_normalise(q) for q in expected_queries(ok_server).values())
    assert {r.authorization for r in seen} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize("behaviour", FAILURES)
def test_each_failure_mode_answers_200_within_the_budget(budget_server, fhir_stub, behaviour):
    other_host = fhir_stub("ok") if behaviour == "redirect" else None
    stub = fhir_stub(behaviour, **stub_options(behaviour, other_host))
    timings = []
    for _attempt in range(2):
        # A second attempt only when the first was late: on a busy 2-CPU CI box a scheduling stall
        # can add a second once; a service that really waits on the FHIR server is late every time.
        body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
        response, elapsed = call(budget_server, body)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert "cards" in response.json()
        timings.append(elapsed)
        if elapsed < BUDGET + SLACK:
            break
    assert min(timings) < BUDGET + SLACK, f"{behaviour}: answered after {timings} s"
    if behaviour != "down":
        assert stub.seen(), behaviour
        assert {r.authorization for r in stub.seen()} == {f"Bearer {TOKEN}"}
    if other_host is not None:
        assert other_host.seen() == [], "followed a redirect to another host (and leaked the token)"


def test_one_bad_resource_type_does_not_hold_up_the_others(budget_server, fhir_stub):
    stub = fhir_stub("ok", behaviours={"Observation": "hang", "Condition": "500"})
    response, elapsed = call(budget_server, with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN))
    assert response.status_code == 200
    assert elapsed < BUDGET + SLACK
    assert any(r.resource_type == "Observation" for r in stub.seen())


def test_prefetched_keys_are_not_fetched(ok_server, fhir_stub):
    stub = fhir_stub("ok")
    body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
    body["prefetch"] = {
        "patient": {"resourceType": "Patient", "id": PATIENT, "gender": "female", "birthDate": "1958-03-01"},
        "labs": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    }
    response, _ = call(ok_server, body)
    assert response.status_code == 200
    fetched = sorted(r.relative_url for r in stub.seen())
    assert fetched == sorted(_normalise(q) for k, q in expected_queries(ok_server).items() if k not in body["prefetch"])
    assert not any(r.resource_type == "Patient" for r in stub.seen())


def test_keys_sent_as_null_are_not_fetched(ok_server, fhir_stub):
    stub = fhir_stub("ok")
    body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
    body["prefetch"] = {"patient": None, "medicationRequests": None, "procedures": None}
    response, _ = call(ok_server, body)
    assert response.status_code == 200
    fetched = {r.resource_type for r in stub.seen()}
    assert "Patient" not in fetched and "MedicationRequest" not in fetched and "Procedure" not in fetched
    assert len(stub.seen()) == len(templates(ok_server)) - 3


def test_everything_prefetched_means_no_fetch_at_all(ok_server, fhir_stub):
    stub = fhir_stub("ok")
    body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
    body["prefetch"] = {
        t.key: {"resourceType": "Bundle", "type": "searchset", "entry": []} for t in templates(ok_server)
    }
    body["prefetch"]["patient"] = {"resourceType": "Patient", "id": PATIENT}
    assert call(ok_server, body)[0].status_code == 200
    assert stub.seen() == []


def test_missing_required_keys_without_fhir_server_is_412_naming_them(budget_server):
    required = [t.key for t in templates(budget_server) if t.required]
    optional = [t.key for t in templates(budget_server) if not t.required]
    assert required, "the service declares required prefetch"
    body = sorafenib_order(patient_id=PATIENT)
    body["prefetch"] = {key: None for key in optional}
    body["prefetch"][required[0]] = None  # null = "no data": not missing
    response, _ = call(budget_server, body)
    assert response.status_code == 412, response.text
    payload = response.json()
    assert payload["error"] and payload["message"]
    assert sorted(d["field"] for d in payload["details"]) == sorted(f"prefetch.{k}" for k in required[1:])


def test_missing_optional_keys_without_fhir_server_is_not_412(budget_server):
    body = sorafenib_order(patient_id=PATIENT)
    body["prefetch"] = {t.key: None for t in templates(budget_server) if t.required}
    assert call(budget_server, body)[0].status_code == 200


def test_operation_outcome_in_prefetch_is_not_refetched(ok_server, fhir_stub):
    """An OperationOutcome in place of a prefetch value counts as missing but was *sent*: not fetched."""
    stub = fhir_stub("ok")
    body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
    body["prefetch"] = {
        "patient": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    }
    assert call(ok_server, body)[0].status_code == 200
    assert not any(r.resource_type == "Patient" for r in stub.seen())


# --- resolve() directly, still over real HTTP, to see which keys went missing and why -------------


@pytest.fixture
def client():
    return FhirClient(max_bytes=256 * 1024, max_pages=3, workers=16)


def hook_request(stub: FhirStub, prefetch: dict | None = None) -> HookRequest:
    body = with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN)
    if prefetch is not None:
        body["prefetch"] = prefetch
    return HookRequest.model_validate(body)


def test_resolve_with_an_ok_server_fetches_every_missing_key(server, fhir_stub, client):
    stub = fhir_stub("ok")
    result = resolve(hook_request(stub), templates(server), client, OK_BUDGET)
    assert result.missing == {}
    assert sorted(result.fetched) == sorted(t.key for t in templates(server))
    assert result.values["patient"]["resourceType"] == "Patient"
    assert result.values["patient"]["id"] == PATIENT


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("slow", "in time"),
        ("hang", "in time"),
        ("down", "could not be reached"),
        ("401", "HTTP 401"),
        ("500", "HTTP 500"),
        ("malformed", "not JSON"),
        ("html", "not JSON"),
        ("huge", "exceeded"),
        ("redirect", "redirected"),
    ],
)
def test_resolve_reports_every_key_missing_with_the_reason(server, fhir_stub, client, behaviour, reason):
    other_host = fhir_stub("ok") if behaviour == "redirect" else None
    stub = fhir_stub(behaviour, **stub_options(behaviour, other_host))
    started = time.monotonic()
    result = resolve(hook_request(stub), templates(server), client, BUDGET)
    assert time.monotonic() - started < BUDGET + SLACK
    assert result.fetched == []
    assert set(result.missing) == {t.key for t in templates(server)}
    for key, why in result.missing.items():
        # "slow" and "hang" may surface as the budget running out or as a read timeout.
        acceptable = (reason, "budget", "could not be reached") if behaviour in ("slow", "hang") else (reason,)
        assert any(a in why for a in acceptable), (key, why)
        assert TOKEN not in why
    if other_host is not None:
        assert other_host.seen() == []


def test_resolve_keeps_what_was_sent_and_fetches_only_the_rest(server, fhir_stub, client):
    stub = fhir_stub("ok")
    sent = {"patient": {"resourceType": "Patient", "id": PATIENT}, "labs": None}
    result = resolve(hook_request(stub, sent), templates(server), client, OK_BUDGET)
    assert result.values["patient"] == sent["patient"]
    assert result.values["labs"] is None
    assert "patient" not in result.fetched and "labs" not in result.fetched
    assert {r.resource_type for r in stub.seen()}.isdisjoint({"Patient"})
    assert len(stub.seen()) == len(templates(server)) - 2


def _normalise(query: str) -> str:
    """The stub records the query decoded; the client sends it URL-encoded."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(query)
    params = parse_qs(parts.query)
    return parts.path + ("?" + "&".join(f"{k}={v}" for k, vs in params.items() for v in vs) if params else "")


def test_labs_by_category_are_announced_and_fetched_so_local_codes_can_be_matched_by_name(live_server, fhir_stub):
    """CDS_LABS_PREFETCH=category: a laboratory whose AFP has only a local code and a Chinese name
    is reachable (the default asks for the terminology file's codes, which a local code is not)."""
    server = live_server(fetch_budget_seconds=OK_BUDGET, labs_prefetch="category")
    (labs,) = [t for t in templates(server) if t.key == "labs"]
    assert labs.query == "Observation?patient={{context.patientId}}&category=laboratory&_sort=-date&_count=200"
    stub = fhir_stub("ok")
    response, _ = call(server, with_fhir_server(sorafenib_order(patient_id=PATIENT), stub.url, TOKEN))
    assert response.status_code == 200, response.text
    assert f"Observation?patient={PATIENT}&category=laboratory&_sort=-date&_count=200" in {
        _normalise(r.relative_url) for r in stub.seen()
    }


def test_labs_by_code_are_the_default(ok_server):
    (labs,) = [t for t in templates(ok_server) if t.key == "labs"]
    assert "&code=" in labs.query and "category" not in labs.query
