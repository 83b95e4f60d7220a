"""JWT authentication of the calling CDS Client (CDS Hooks 2.0 §Trusting CDS Clients), over real HTTP.

A JWKS server on loopback publishes the EHR's EC P-384 and RSA keys; the service runs as a real
HTTP server with JWT enforced. Every rejection must be a 401 with our JSON error shape, a
``WWW-Authenticate: Bearer error="invalid_token"`` header, and no trace of the token in the body.
"""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
import requests
from cds_testkit import (
    ISSUER,
    SELECT_SERVICE,
    SIGN_SERVICE,
    all_null_prefetch,
    bearer,
    claims,
    hs256_with_public_key,
    issue_cards,
    service_process,
    sign,
    sorafenib_order,
    unsigned,
)
from postgres import unreachable_database

TIMEOUT = 10


@pytest.fixture
def secured(live_server, jwks):
    return live_server(**jwks.settings())


def hook_body(server, service_id: str = SELECT_SERVICE) -> dict:
    """A valid request that needs no FHIR data: every prefetch key sent as null."""
    service = server.runtime.services[service_id]
    body = sorafenib_order(service.hook)
    body["prefetch"] = all_null_prefetch([t.key for t in service.templates])
    return body


def call(server, token: str | None, service_id: str = SELECT_SERVICE, headers: dict | None = None):
    hdrs = bearer(token) if token is not None else {}
    hdrs.update(headers or {})
    return requests.post(
        f"{server.url}/cds-services/{service_id}", json=hook_body(server, service_id), headers=hdrs, timeout=TIMEOUT
    )


def assert_rejected(response: requests.Response, token: str | None, mentions: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    body = response.json()
    assert body["error"] == "invalid_token"
    assert mentions.lower() in body["message"].lower(), body["message"]
    if token:
        assert token not in response.text
        for part in token.split("."):
            if len(part) > 8:
                assert part not in response.text


def aud(server, service_id: str = SELECT_SERVICE) -> str:
    return f"{server.url}/cds-services/{service_id}"


# --- accepted ------------------------------------------------------------------------------------


def test_valid_es384_token_is_accepted(secured, jwks):
    token = sign(jwks.ec, claims(aud(secured)))
    response = call(secured, token)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["cards"], list)


def test_a_token_is_accepted_once_with_the_postgresql_store(live_server, jwks, postgres_url):
    # Production stores jti records in PostgreSQL; psycopg reports no rowcount for the insert,
    # which once made every token look like a replay there.
    server = live_server(**jwks.settings(), database_url=postgres_url())
    token = sign(jwks.ec, claims(aud(server)))
    assert call(server, token).status_code == 200
    assert_rejected(call(server, token), token, "replay")


def test_valid_rs384_token_is_accepted(secured, jwks):
    token = sign(jwks.rsa, claims(aud(secured)))
    assert call(secured, token).status_code == 200


def test_aud_may_be_an_array_holding_the_endpoint(secured, jwks):
    token = sign(jwks.ec, claims([aud(secured)]))
    assert call(secured, token).status_code == 200


def test_discovery_requires_a_token_whose_aud_is_the_discovery_url(secured, jwks):
    # CDS Hooks 2.0: "every single CDS Service call, whether that be a Discovery call ..."
    url = f"{secured.url}/cds-services"
    assert_rejected(requests.get(url, timeout=TIMEOUT), None, "Authorization")
    token = sign(jwks.ec, claims(url))
    response = requests.get(url, headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200
    assert {s["id"] for s in response.json()["services"]} == {SELECT_SERVICE, SIGN_SERVICE}


def test_feedback_requires_a_token_for_the_feedback_url(secured, jwks):
    url = f"{secured.url}/cds-services/{SELECT_SERVICE}/feedback"
    feedback = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2025-01-01T00:00:00Z"}]}
    issue_cards(secured.runtime.store, SELECT_SERVICE, feedback["feedback"])
    wrong = sign(jwks.ec, claims(aud(secured)))  # the service URL, not its feedback URL
    assert_rejected(requests.post(url, json=feedback, headers=bearer(wrong), timeout=TIMEOUT), wrong, "aud")
    token = sign(jwks.ec, claims(url))
    response = requests.post(url, json=feedback, headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200
    assert secured.runtime.store.feedback.count() == 1


def test_allowlisted_jku_is_used_to_find_the_key(secured, jwks):
    token = sign(jwks.alt, claims(aud(secured)), jku=jwks.allowed_jku)
    assert call(secured, token).status_code == 200
    assert "/allowed-jku.json" in jwks.server.requests


def test_public_base_url_is_the_audience_when_configured(live_server, jwks):
    public = "https://cds.hospital.example"
    server = live_server(**jwks.settings(public_base_url=public))
    local = sign(jwks.ec, claims(aud(server)))
    assert_rejected(call(server, local), local, "aud")
    token = sign(jwks.ec, claims(f"{public}/cds-services/{SELECT_SERVICE}"))
    assert call(server, token).status_code == 200


# --- rejected ------------------------------------------------------------------------------------


def test_missing_authorization_header(secured):
    assert_rejected(call(secured, None), None, "Authorization")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "eyJhbGciOi"])
def test_authorization_header_that_is_not_a_bearer_token(secured, header):
    assert_rejected(call(secured, None, headers={"Authorization": header}), None, "Bearer")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzM4NCJ9.%%%.sig", "...."])
def test_garbage_token(secured, garbage):
    assert_rejected(call(secured, garbage), garbage, "well-formed")


def test_alg_none(secured, jwks):
    token = unsigned(claims(aud(secured)), kid=jwks.ec.kid)
    assert_rejected(call(secured, token), token, "alg")


def test_hs256_signed_with_the_public_key_alg_confusion(secured, jwks):
    token = hs256_with_public_key(jwks.ec, claims(aud(secured)))
    assert_rejected(call(secured, token), token, "alg")
    token = hs256_with_public_key(jwks.rsa, claims(aud(secured)))
    assert_rejected(call(secured, token), token, "alg")


def test_wrong_key_kid_present_but_signed_by_another_key(secured, jwks):
    assert jwks.attacker.kid == jwks.ec.kid
    token = sign(jwks.attacker, claims(aud(secured)))
    assert_rejected(call(secured, token), token, "signature")


def test_kid_not_in_the_issuers_jwks(secured, jwks):
    token = sign(jwks.alt, claims(aud(secured)))  # alt's key is only at the jku URL
    assert_rejected(call(secured, token), token, "kid")


def test_missing_kid(secured, jwks):
    token = jwt.encode(claims(aud(secured)), jwks.ec.private, algorithm="ES384", headers={"typ": "JWT"})
    assert_rejected(call(secured, token), token, "kid")


def test_es384_header_with_an_rsa_kid(secured, jwks):
    token = jwt.encode(claims(aud(secured)), jwks.ec.private, algorithm="ES384", headers={"kid": jwks.rsa.kid})
    assert_rejected(call(secured, token), token, "alg")


def test_wrong_aud(secured, jwks):
    token = sign(jwks.ec, claims("https://evil.example/cds-services/" + SELECT_SERVICE))
    assert_rejected(call(secured, token), token, "aud")


def test_aud_of_another_service(secured, jwks):
    token = sign(jwks.ec, claims(aud(secured, SIGN_SERVICE)))
    assert_rejected(call(secured, token, SELECT_SERVICE), token, "aud")


def test_expired(secured, jwks):
    now = int(time.time())
    token = sign(jwks.ec, claims(aud(secured), iat=now - 300, exp=now - 120))
    assert_rejected(call(secured, token), token, "expired")


def test_iat_in_the_future(secured, jwks):
    now = int(time.time())
    token = sign(jwks.ec, claims(aud(secured), iat=now + 300, exp=now + 600))
    assert_rejected(call(secured, token), token, "future")


def test_iat_older_than_max_age(secured, jwks):
    now = int(time.time())
    token = sign(jwks.ec, claims(aud(secured), iat=now - 3600, exp=now + 60))
    assert_rejected(call(secured, token), token, "issued more than")


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud"])
def test_missing_required_claim(secured, jwks, claim):
    token = sign(jwks.ec, claims(aud(secured), **{claim: None}))
    assert_rejected(call(secured, token), token, claim)


def test_replayed_jti(secured, jwks):
    token = sign(jwks.ec, claims(aud(secured)))
    assert call(secured, token).status_code == 200
    assert_rejected(call(secured, token), token, "replay")
    # Same jti in a freshly signed token is still a replay.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    again = sign(jwks.ec, claims(aud(secured), jti=jti))
    assert_rejected(call(secured, again), again, "replay")


def test_replay_is_refused_by_another_process_sharing_the_database(live_server, jwks):
    # Two app instances (as two gunicorn workers or two replicas) behind one public URL and one
    # database: a token used on one must be refused on the other.
    public = "https://cds.example.org"
    first = live_server(**jwks.settings(public_base_url=public))
    second = live_server(**jwks.settings(public_base_url=public))
    token = sign(jwks.ec, claims(f"{public}/cds-services/{SELECT_SERVICE}"))
    assert call(first, token).status_code == 200
    assert_rejected(call(second, token), token, "replay")


def test_without_the_replay_record_a_call_fails_closed_with_503(secured, jwks):
    store = secured.runtime.store
    healthy = store.database.replay_engine
    store.database.replay_engine = unreachable_database()
    token = sign(jwks.ec, claims(aud(secured)))
    try:
        response = call(secured, token)
    finally:
        store.database.replay_engine = healthy
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "replay_store_unavailable"
    assert token not in response.text
    assert call(secured, token).status_code == 200  # never recorded, so not a replay once it is back


def test_unknown_iss(secured, jwks):
    token = sign(jwks.ec, claims(aud(secured), iss="https://other-ehr.example/"))
    assert_rejected(call(secured, token), token, "iss")


def test_non_allowlisted_jku_is_never_fetched(secured, jwks):
    before = list(jwks.server.requests)
    token = sign(jwks.attacker, claims(aud(secured)), jku=jwks.attacker_jku)
    assert_rejected(call(secured, token), token, "jku")
    assert "/attacker.json" not in jwks.server.requests
    assert jwks.server.requests[len(before) :].count("/attacker.json") == 0


def test_oversize_token(secured, jwks):
    limit = secured.settings.jwt_max_token_bytes
    token = sign(jwks.ec, claims(aud(secured), padding="p" * limit))
    assert len(token) > limit
    assert_rejected(call(secured, token), token, "exceeds")


def test_wrong_typ(secured, jwks):
    token = sign(jwks.ec, claims(aud(secured)), typ="at+jwt")
    assert_rejected(call(secured, token), token, "typ")


# --- what stays open -----------------------------------------------------------------------------


def test_probes_and_cors_preflight_need_no_token(secured):
    assert requests.get(f"{secured.url}/healthz", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{secured.url}/readyz", timeout=TIMEOUT).status_code == 200
    preflight = requests.options(
        f"{secured.url}/cds-services/{SELECT_SERVICE}",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 200
    assert preflight.headers.get("Access-Control-Allow-Origin") in ("*", "https://sandbox.cds-hooks.org")


def test_rejections_carry_cors_headers_for_browser_clients(secured):
    response = call(secured, None, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 401
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", "https://sandbox.cds-hooks.org")


def test_demo_settings_need_no_token(live_server):
    server = live_server()  # environment=demo, jwt_required unset → off
    assert not server.settings.jwt_enforced
    assert call(server, None).status_code == 200
    assert requests.get(f"{server.url}/cds-services", timeout=TIMEOUT).status_code == 200


def test_service_refuses_to_start_with_a_symmetric_algorithm(make_settings, jwks):
    from cds_service import create_app

    with pytest.raises(ValueError, match="asymmetric"):
        create_app(make_settings(**jwks.settings(jwt_algorithms=["ES384", "HS256"])))


def test_production_process_under_gunicorn_enforces_jwt(tmp_path, jwks):
    env = {
        "CDS_ENVIRONMENT": "production",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/prod.sqlite3",
        "CDS_JWT_ISSUERS": json.dumps({ISSUER: jwks.issuer_url}),
        "CDS_FHIR_SERVER_ALLOWLIST": json.dumps(["https://fhir.hospital.example/"]),
        "CDS_PUBLIC_BASE_URL": "https://cds.hospital.example",
        "CDS_AUDIT_PATIENT_KEYS": '{"test-2026": "test-only-patient-key-of-at-least-32-bytes"}',
    }
    with service_process(env) as url:
        discovery = f"{url}/cds-services"
        response = requests.get(discovery, timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        token = sign(jwks.ec, claims("https://cds.hospital.example/cds-services"))
        assert requests.get(discovery, headers=bearer(token), timeout=TIMEOUT).status_code == 200
        # The audience is the public URL, whatever Host the request names.
        as_host = sign(jwks.ec, claims(discovery))
        assert requests.get(discovery, headers=bearer(as_host), timeout=TIMEOUT).status_code == 401


def test_tokens_are_never_logged(secured, jwks, caplog):
    caplog.set_level(logging.DEBUG)
    good = sign(jwks.ec, claims(aud(secured)))
    bad = sign(jwks.attacker, claims(aud(secured)))
    assert call(secured, good).status_code == 200
    assert call(secured, bad).status_code == 401
    assert call(secured, good).status_code == 401  # replay
    logged = caplog.text
    assert "bearer token refused" in logged  # the failures are logged (cds_service.security) ...
    for token in (good, bad):
        for part in token.split("."):
            assert part not in logged  # ... without any part of the token


def test_replay_cache_forgets_a_jti_once_its_token_has_expired():
    from cds_service.auth import ReplayCache

    cache, now = ReplayCache(), time.time()
    assert cache.first_use(ISSUER, "j-1", now + 0.2)
    assert not cache.first_use(ISSUER, "j-1", now + 0.2)
    assert cache.first_use("https://other-issuer.example/", "j-1", now + 60)  # jti is per issuer
    time.sleep(0.3)
    assert cache.first_use(ISSUER, "j-1", now + 60)  # the old token is expired: no longer a replay
