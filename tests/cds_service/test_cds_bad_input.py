"""Malformed calls get a 4xx JSON answer that names the field to fix; nothing an EHR sends causes a 500."""

from __future__ import annotations

import copy
import json

import pytest
import requests
from cds_testkit import SELECT_SERVICE, SIGN_SERVICE, sorafenib_order, spec_example
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIMEOUT = 10


def post(
    server, body=None, *, service_id: str = SIGN_SERVICE, data: bytes | None = None, content_type="application/json"
):
    return requests.post(
        f"{server.url}/cds-services/{service_id}",
        json=body if data is None else None,
        data=data,
        headers={"Content-Type": content_type},
        timeout=TIMEOUT,
    )


def assert_error(response: requests.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        fields = [d["field"] for d in body.get("details", [])]
        assert any(f == field or f.startswith(field + ".") for f in fields), (field, body)
    return body


def test_unknown_service_is_404_json(server):
    assert_error(post(server, sorafenib_order(), service_id="no-such-service"), 404)
    assert_error(requests.post(f"{server.url}/cds-services/no-such-service/feedback", json={}, timeout=TIMEOUT), 404)
    assert_error(requests.get(f"{server.url}/no-such-path", timeout=TIMEOUT), 404)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'{"hook": "order-sign"}', "text/plain"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[]", "application/json"),
        (b'[{"hook": "order-sign"}]', "application/json"),
        (b'"order-sign"', "application/json"),
        (b"null", "application/json"),
    ],
)
def test_body_that_is_not_a_json_object_is_400(server, data, content_type):
    assert_error(post(server, data=data, content_type=content_type), 400)


@pytest.mark.parametrize("value", ["NaN", "-Infinity", '"\\ud800"'])
def test_values_outside_interoperable_json_are_400(server, value):
    # Python's json module reads NaN, Infinity and lone surrogates; I-JSON (RFC 7493) does not,
    # nor do many EHR parsers: a request carrying one is refused as malformed, not half-read.
    text = json.dumps(sorafenib_order())
    assert post(server, data=text.encode()).status_code == 412  # well-formed (412: no prefetch, no fhirServer)
    body = assert_error(post(server, data=(text[:-1] + f', "extra": {value}}}').encode()), 400)
    assert body["error"] == "invalid_json"


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_naming_it(server, field):
    body = sorafenib_order()
    del body[field]
    assert_error(post(server, body), 400, field)


@pytest.mark.parametrize("field", ["userId", "patientId", "draftOrders"])
def test_missing_required_context_field_is_400_naming_it(server, field):
    body = sorafenib_order()
    del body["context"][field]
    assert_error(post(server, body), 400, f"context.{field}")


@pytest.mark.parametrize("value", ["not-a-uuid", "", 12345, "d1577c69-dfbe-44ad-ba6d"])
def test_hook_instance_not_a_uuid_is_400(server, value):
    body = sorafenib_order()
    body["hookInstance"] = value
    assert_error(post(server, body), 400, "hookInstance")


@pytest.mark.parametrize(
    "draft_orders",
    [
        {"resourceType": "MedicationRequest", "id": "x"},
        {"entry": []},
        [],
        "Bundle",
        {"resourceType": "Bundle", "entry": {"resource": {}}},
    ],
)
def test_draft_orders_not_a_bundle_is_400(server, draft_orders):
    body = sorafenib_order()
    body["context"]["draftOrders"] = draft_orders
    assert_error(post(server, body), 400, "context.draftOrders")


def test_wrong_hook_for_the_service_is_400(server):
    assert_error(post(server, sorafenib_order("order-select"), service_id=SIGN_SERVICE), 400, "hook")
    assert_error(post(server, sorafenib_order("order-sign"), service_id=SELECT_SERVICE), 400, "hook")


def test_spec_patient_view_example_sent_to_an_order_service_is_400(server):
    assert_error(post(server, spec_example("request-patient-view.json")), 400)


@pytest.mark.parametrize("value", ["123", 42, ["Patient/1"], {"id": "no-resource-type"}])
def test_prefetch_value_not_a_resource_is_400(server, value):
    body = sorafenib_order()
    body["prefetch"] = {"patient": value}
    assert_error(post(server, body), 400, "prefetch")


def test_prefetch_that_is_not_an_object_is_400(server):
    body = sorafenib_order()
    body["prefetch"] = ["patient"]
    assert_error(post(server, body), 400, "prefetch")


def _with_authorization_only(body: dict) -> dict:
    body["fhirAuthorization"] = {
        "access_token": "tok-123",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read",
        "subject": "hcc-cds",
    }
    return body


def test_fhir_authorization_without_fhir_server_is_400(server):
    body = assert_error(post(server, _with_authorization_only(sorafenib_order())), 400)
    assert "fhirServer" in json.dumps(body["details"])
    assert "tok-123" not in json.dumps(body)


def test_fhir_authorization_without_fhir_server_names_the_field(server):
    assert_error(post(server, _with_authorization_only(sorafenib_order())), 400, "fhirServer")


@pytest.mark.parametrize("value", ["not a url", "ftp://fhir.example/r4", 7])
def test_fhir_server_not_an_http_url_is_400(server, value):
    body = sorafenib_order()
    body["fhirServer"] = value
    assert_error(post(server, body), 400, "fhirServer")


def test_oversize_body_is_413_json(live_server):
    server = live_server(max_request_bytes=64 * 1024)
    body = sorafenib_order()
    body["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "x" * (128 * 1024)}]
    assert_error(post(server, body), 413)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_a_hook_is_405_json(server, method):
    response = requests.request(method, f"{server.url}/cds-services/{SIGN_SERVICE}", timeout=TIMEOUT)
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


def test_wrong_method_on_feedback_and_discovery_is_405_json(server):
    assert_error(requests.get(f"{server.url}/cds-services/{SIGN_SERVICE}/feedback", timeout=TIMEOUT), 405)
    assert_error(requests.post(f"{server.url}/cds-services", json={}, timeout=TIMEOUT), 405)


# --- never a 500 -------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_paths = st.sampled_from(
    [
        ("hook",),
        ("hookInstance",),
        ("fhirServer",),
        ("fhirAuthorization",),
        ("context",),
        ("context", "userId"),
        ("context", "patientId"),
        ("context", "selections"),
        ("context", "draftOrders"),
        ("context", "draftOrders", "entry"),
        ("prefetch",),
        ("prefetch", "patient"),
        ("extension",),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(_paths, _json), min_size=1, max_size=3))
def test_mutated_requests_never_cause_a_500(server, mutations):
    body = sorafenib_order()
    for path, value in mutations:
        target = body
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = copy.deepcopy(value)
    response = post(server, body)
    assert response.status_code in (200, 400, 412), response.text
    assert response.headers["Content-Type"].startswith("application/json")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feedback=_json)
def test_arbitrary_feedback_bodies_never_cause_a_500(server, feedback):
    response = requests.post(
        f"{server.url}/cds-services/{SELECT_SERVICE}/feedback", json={"feedback": feedback}, timeout=TIMEOUT
    )
    assert response.status_code in (200, 400), response.text


# --- CORS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/cds-services", f"/cds-services/{SIGN_SERVICE}", f"/cds-services/{SIGN_SERVICE}/feedback"]
)
def test_cors_preflight_from_the_cds_hooks_sandbox(server, path):
    origin = "https://sandbox.cds-hooks.org"
    response = requests.options(
        f"{server.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST" if path != "/cds-services" else "GET",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] in ("*", origin)
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    allowed_methods = response.headers["Access-Control-Allow-Methods"]
    assert ("POST" if path != "/cds-services" else "GET") in allowed_methods


def test_cors_headers_on_an_actual_call(server):
    response = requests.get(
        f"{server.url}/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    # An EHR calling server to server sends no Origin and gets no CORS headers.
    plain = requests.get(f"{server.url}/cds-services", timeout=TIMEOUT)
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers


def test_cors_headers_on_a_hook_call_from_the_sandbox_only(server):
    body = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "1",
            "draftOrders": {"resourceType": "Bundle", "entry": []},
        },
    }
    url = f"{server.url}/cds-services/{SIGN_SERVICE}"
    sandbox = requests.post(url, json=body, headers={"Origin": "https://sandbox.cds-hooks.org"}, timeout=TIMEOUT)
    assert sandbox.status_code == 200, sandbox.text
    assert sandbox.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    assert "X-Request-ID" in sandbox.headers["Access-Control-Expose-Headers"]
    ehr = requests.post(url, json=body, timeout=TIMEOUT)
    assert ehr.status_code == 200 and not any(h.startswith("Access-Control-") for h in ehr.headers)
