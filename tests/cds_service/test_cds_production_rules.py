"""Production rules an integrator must know (issue 25): the JWT claims CDS Hooks 2.0 requires,
anonymous discovery as a setting, a refused ``fhirServer`` still spends the token's ``jti``, and
outbound TLS through a hospital's internal CA (``CDS_CA_BUNDLE``)."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import time
from pathlib import Path

import pytest
import requests
from cds_testkit import (
    ISSUER,
    SELECT_SERVICE,
    all_null_prefetch,
    bearer,
    claims,
    sign,
    sorafenib_order,
    with_fhir_server,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from json_server import JsonServer
from pydantic import ValidationError

from cds_service.auth import JwtVerifier, ReplayCache
from cds_service.fhir_client import FetchError, FhirClient
from cds_service.settings import Settings

TIMEOUT = 10


def hook_body(server) -> dict:
    service = server.runtime.services[SELECT_SERVICE]
    body = sorafenib_order(service.hook)
    body["prefetch"] = all_null_prefetch([t.key for t in service.templates])
    return body


# --- JWT claims: what CDS Hooks 2.0 requires, no more -------------------------------------------


def test_a_token_without_sub_is_accepted_since_cds_hooks_2_defines_no_sub(live_server, jwks):
    # CDS Hooks 2.0.1 §Trusting CDS Clients: the payload's REQUIRED fields are iss, aud, exp, iat
    # and jti (tenant OPTIONAL); sub is not among them, so requiring it would refuse conformant EHRs.
    server = live_server(**jwks.settings())
    url = f"{server.url}/cds-services/{SELECT_SERVICE}"
    payload = claims(url)
    assert "sub" not in payload
    assert (
        requests.post(url, json=hook_body(server), headers=bearer(sign(jwks.ec, payload)), timeout=TIMEOUT).status_code
        == 200
    )
    for required in ("iss", "aud", "exp", "iat", "jti"):
        token = sign(jwks.ec, claims(url, **{required: None}))
        response = requests.post(url, json=hook_body(server), headers=bearer(token), timeout=TIMEOUT)
        assert response.status_code == 401, required


# --- discovery ----------------------------------------------------------------------------------


def test_anonymous_discovery_is_a_setting_that_opens_the_service_list_only(live_server, jwks):
    server = live_server(**jwks.settings(discovery_requires_jwt=False))
    discovery = requests.get(f"{server.url}/cds-services", timeout=TIMEOUT)
    assert discovery.status_code == 200
    assert {s["id"] for s in discovery.json()["services"]} >= {SELECT_SERVICE}
    service = requests.post(f"{server.url}/cds-services/{SELECT_SERVICE}", json=hook_body(server), timeout=TIMEOUT)
    assert service.status_code == 401
    feedback = requests.post(
        f"{server.url}/cds-services/{SELECT_SERVICE}/feedback", json={"feedback": []}, timeout=TIMEOUT
    )
    assert feedback.status_code == 401
    assert Settings().discovery_requires_jwt is True  # the default keeps discovery behind the JWT


# --- a refused fhirServer spends the jti ---------------------------------------------------------


def test_a_call_refused_for_its_fhir_server_still_spends_the_jti(live_server, jwks):
    # The token was valid and has been used: the EHR signs a new one for every call, and a captured
    # token must not get a second chance with a corrected fhirServer.
    server = live_server(**jwks.settings())
    url = f"{server.url}/cds-services/{SELECT_SERVICE}"
    token = sign(jwks.ec, claims(url))
    refused = requests.post(
        url,
        json=with_fhir_server(hook_body(server), "http://169.254.169.254/fhir"),
        headers=bearer(token),
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "fhir_server_not_allowed"
    again = requests.post(url, json=hook_body(server), headers=bearer(token), timeout=TIMEOUT)
    assert again.status_code == 401 and "replay" in again.json()["message"]


# --- outbound TLS through an internal CA ---------------------------------------------------------


@pytest.fixture(scope="module")
def internal_ca(tmp_path_factory) -> tuple[Path, ssl.SSLContext]:
    """A self-signed 'hospital CA' certificate for 127.0.0.1 (PEM file) and a server context using it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital Internal CA")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("internal-ca")
    cert_path, key_path = directory / "ca.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


@pytest.fixture
def https_server(internal_ca, jwks):
    """Serves a Patient at /Patient/p1 and the issuer's JWK Set at /jwks.json, over TLS."""
    routes = {"/jwks.json": {"keys": [jwks.ec.public_jwk]}}
    with JsonServer(routes, default={"resourceType": "Patient", "id": "p1"}, ssl_context=internal_ca[1]) as server:
        yield server.url


def test_fhir_calls_trust_the_ca_bundle_and_log_why_tls_failed_without_it(internal_ca, https_server, caplog):
    url = f"{https_server}/Patient/p1"
    untrusting = FhirClient(max_bytes=1 << 20, max_pages=2, workers=2)
    with caplog.at_level(logging.WARNING, logger="cds_service.fhir_client"):
        with pytest.raises(FetchError, match="SSLError"):
            untrusting.get_fhir(url, "secret-access-token", time.monotonic() + 5, untrusting.policy)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "certificate verify failed" in warning and "CDS_CA_BUNDLE" in warning
    assert "secret-access-token" not in warning and "/Patient/p1" not in warning

    trusting = FhirClient(max_bytes=1 << 20, max_pages=2, workers=2, ca_bundle=internal_ca[0])
    assert trusting.get_fhir(url, "token", time.monotonic() + 5, trusting.policy)["id"] == "p1"


def test_jwks_fetches_trust_the_ca_bundle(internal_ca, https_server, jwks):
    audience = "https://cds.example.org/cds-services/x"
    settings = {"jwt_required": True, "jwt_issuers": {ISSUER: f"{https_server}/jwks.json"}}
    trusting = JwtVerifier(Settings(**settings, ca_bundle=internal_ca[0]), ReplayCache())
    assert trusting.verify(sign(jwks.ec, claims(audience)), audience)["iss"] == ISSUER
    untrusting = JwtVerifier(Settings(**settings), ReplayCache())
    with pytest.raises(Exception, match="could not be retrieved"):
        untrusting.verify(sign(jwks.ec, claims(audience)), audience)


def test_the_ca_bundle_must_be_a_readable_pem_file(tmp_path, internal_ca):
    assert Settings(ca_bundle=internal_ca[0]).ca_bundle == internal_ca[0]
    with pytest.raises(ValidationError, match="cannot read the CA bundle"):
        Settings(ca_bundle=tmp_path / "missing.pem")
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(ValidationError, match="no PEM certificate"):
        Settings(ca_bundle=not_pem)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="not a valid PEM CA bundle"):
        Settings(ca_bundle=broken)
