"""Outbound calls under attack (issue 22, items 1 and 3): the SMART launch goes only where the
``fhirServer`` policy lets a hook go, and every outbound call ends at its deadline however slowly
the server drips, so one slow server cannot hold the threads other patients' calls need."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from fhir_stub import FhirStub
from hardening_kit import PREFETCH_KEYS, sorafenib_call_to_fetch

from cds_service.fhir_client import FetchError, FhirClient
from cds_service.prefetch import PrefetchTemplate
from cds_service.services import CdsService
from cds_service.smart.data import fetch_patient_record
from cds_service.smart.oauth import SmartError
from cds_service.ssrf import FhirServerPolicy

TIMEOUT = 15
METADATA = "http://169.254.169.254/fhir"


def launch(server, iss: str) -> requests.Response:
    query = urlencode({"iss": iss, "launch": "xyz"})
    return requests.get(f"{server.url}/smart/launch?{query}", allow_redirects=False, timeout=TIMEOUT)


def smart_configuration(token_endpoint: str, authorization_endpoint: str = "http://127.0.0.1:9/authorize") -> dict:
    return {
        ".well-known/smart-configuration": {
            "authorization_endpoint": authorization_endpoint,
            "token_endpoint": token_endpoint,
            "code_challenge_methods_supported": ["S256"],
        }
    }


# -- item 1: the launch's iss, its discovered endpoints and its data fetch ---------------------


def test_iss_with_userinfo_naming_an_allowed_host_is_refused_and_the_real_host_sees_nothing(live_server):
    with FhirStub("ok") as allowed, FhirStub("ok") as attacker:
        allowed_host = allowed.url.removeprefix("http://").split("/")[0]
        server = live_server(smart_iss_allowlist=[f"http://{allowed_host}"])
        tricked = attacker.url.replace("http://", f"http://{allowed_host}@")  # host is the attacker's
        assert tricked.startswith(f"http://{allowed_host}")  # what the old prefix rule let through
        response = launch(server, tricked)
        assert response.status_code == 403
        assert attacker.seen() == [] and allowed.seen() == []


def test_iss_whose_host_only_starts_with_an_allowed_host_is_refused(live_server):
    server = live_server(smart_iss_allowlist=["https://fhir.hospital.test"])
    response = launch(server, "https://fhir.hospital.test.evil.example/fhir")
    assert response.status_code == 403 and "not registered" in response.text


def test_metadata_address_is_refused_even_in_demo(live_server):
    started = time.monotonic()
    response = launch(live_server(), METADATA)
    assert response.status_code == 403
    assert time.monotonic() - started < 2  # refused as written, not after a connection attempt


def test_iss_defaults_to_the_fhir_server_allowlist(live_server):
    with FhirStub("ok") as allowed, FhirStub("ok") as other:
        server = live_server(fhir_server_allowlist=[allowed.url])
        assert launch(server, other.url).status_code == 403 and other.seen() == []


def test_smart_configuration_redirect_to_an_internal_server_is_not_followed(live_server):
    with FhirStub("ok") as internal, FhirStub("redirect", redirect_to=internal.url) as iss:
        response = launch(live_server(), iss.url)
        assert response.status_code == 502 and "redirected" in response.text
        assert internal.seen() == []


@pytest.mark.parametrize(
    "endpoints",
    [
        {"token_endpoint": METADATA + "/token"},
        {"token_endpoint": "http://user:pw@127.0.0.1:9/token"},
        {"token_endpoint": "file:///etc/passwd"},
        {"token_endpoint": "http://127.0.0.1:9/token", "authorization_endpoint": "javascript:alert(1)"},
    ],
)
def test_discovered_endpoints_are_held_to_the_address_rules(live_server, endpoints):
    with FhirStub("ok", resources=smart_configuration(**endpoints)) as iss:
        response = launch(live_server(), iss.url)
    assert response.status_code == 502 and "endpoint that" in response.text
    assert "set-cookie" not in {k.lower() for k in response.headers}  # no launch remembered


def test_app_data_fetch_does_not_follow_a_next_link_to_another_server():
    service = CdsService("svc", "order-select", "t", "d", _one_template())
    with FhirStub("ok") as internal:
        page = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": f"{internal.url}/Observation?page=2"}],
        }
        with FhirStub("ok", resources={"Observation": page}) as iss:
            client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
            _patient, values = fetch_patient_record(
                iss.url, "tok", "p1", service, client=client, policy=FhirServerPolicy(), timeout=3
            )
        assert values and internal.seen() == []


@pytest.mark.parametrize("patient", ["p1&code=http://loinc.org|0-0", "../Patient/other", "p#1", ""])
def test_app_refuses_a_patient_id_that_would_change_the_searches(patient):
    service = CdsService("svc", "order-select", "t", "d", _one_template())
    client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
    with FhirStub("ok") as iss, pytest.raises(SmartError, match="not a FHIR id"):
        fetch_patient_record(iss.url, "tok", patient, service, client=client, policy=FhirServerPolicy(), timeout=3)
    assert iss.seen() == []


def _one_template() -> tuple[PrefetchTemplate, ...]:
    return (PrefetchTemplate("labs", "Observation?patient={{context.patientId}}", False, "labs"),)


# -- item 3: one deadline per call, enforced while reading --------------------------------------


def test_a_dripping_server_is_cut_off_at_the_deadline():
    client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
    with FhirStub("drip", drip_seconds=0.1) as drip:
        started = time.monotonic()
        with pytest.raises(FetchError, match="budget ran out"):
            client.get_fhir(f"{drip.url}/Patient/p1", "tok", started + 1.0, FhirServerPolicy())
        elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed  # the body would take ~17 minutes at this rate


def test_a_silent_server_is_cut_off_at_the_deadline_not_per_read():
    client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
    with FhirStub("hang") as hang:
        started = time.monotonic()
        with pytest.raises(FetchError):
            client.get_fhir(f"{hang.url}/Patient/p1", "tok", started + 1.0, FhirServerPolicy())
        assert time.monotonic() - started < 2.5


def test_gzip_is_inflated_under_the_same_cap():
    client = FhirClient(max_bytes=1 << 20, max_pages=5, workers=2)
    with FhirStub("gzip", huge_bytes=4 << 20) as bomb:  # ~50 kB on the wire, 4 MB inflated
        with pytest.raises(FetchError, match="once inflated"):
            client.get_fhir(f"{bomb.url}/Observation", "tok", time.monotonic() + 5, FhirServerPolicy())
    with FhirStub("gzip", huge_bytes=200_000) as small:
        bundle = client.get_fhir(f"{small.url}/Observation", "tok", time.monotonic() + 5, FhirServerPolicy())
    assert bundle["resourceType"] == "Bundle" and bundle["entry"]


def test_a_dripping_server_does_not_take_the_fetch_threads_of_the_next_patient(live_server):
    """Two fetch threads; the calls to the dripping server end at their budget, and so do their
    threads: the next patient's call, on a healthy server, gets every key. Before, the threads were
    held for as long as the drip lasted and the next call's data 'did not answer in time'."""
    server = live_server(fetch_workers=2, fetch_budget_seconds=1.0)
    with FhirStub("drip", drip_seconds=0.5) as drip, FhirStub("ok") as healthy:
        slow = [
            threading.Thread(target=_hook, args=(server, sorafenib_call_to_fetch(drip.url, patient=f"d{i}")))
            for i in range(2)
        ]
        for thread in slow:
            thread.start()
        for thread in slow:
            thread.join(TIMEOUT)
        time.sleep(0.3)  # the budget has passed; the fetch threads must be free again
        answer = _hook(server, sorafenib_call_to_fetch(healthy.url, patient="next"))
        assert answer.status_code == 200
        text = str(answer.json())
        assert "did not answer in time" not in text and "budget ran out" not in text
        assert len(healthy.seen()) == PREFETCH_KEYS


def test_hanging_launches_hold_at_most_half_the_threads_and_hooks_keep_answering(live_server):
    server = live_server(threads=2, smart_timeout_seconds=3.0)  # one launch slot
    with FhirStub("hang") as hanging:
        first = threading.Thread(target=launch, args=(server, hanging.url))
        first.start()
        assert _wait_for(lambda: hanging.seen())
        started = time.monotonic()
        busy = launch(server, hanging.url)
        assert busy.status_code == 503 and busy.headers["Retry-After"]
        assert time.monotonic() - started < 1.0
        assert requests.get(f"{server.url}/healthz", timeout=TIMEOUT).status_code == 200
        first.join(TIMEOUT)
    with FhirStub("hang") as hanging_again:  # the slot is free once the launch ended
        started = time.monotonic()
        assert launch(server, hanging_again.url).status_code == 502
        assert 2.5 < time.monotonic() - started < 6


def _hook(server, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/cds-services/hcc-systemic-therapy-select", json=body, timeout=TIMEOUT)


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
