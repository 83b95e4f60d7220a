"""Fixtures for the CDS service tests: a JWKS server with EC P-384 and RSA keys, a FHIR stub factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cds_testkit import ISSUER, JwksServer, SigningKey, ec_key, rsa_key
from fhir_stub import FhirStub
from postgres import postgres_cluster, postgres_url  # noqa: F401  (session cluster, fresh databases)


@dataclass
class Jwks:
    server: JwksServer
    ec: SigningKey  # published in the issuer's JWK Set
    rsa: SigningKey  # published in the issuer's JWK Set
    alt: SigningKey  # published only at the allowlisted jku URL
    attacker: SigningKey  # published only at a URL nobody trusts; reuses the kid of `ec`

    @property
    def issuer_url(self) -> str:
        return f"{self.server.url}/issuer.json"

    @property
    def allowed_jku(self) -> str:
        return f"{self.server.url}/allowed-jku.json"

    @property
    def attacker_jku(self) -> str:
        return f"{self.server.url}/attacker.json"

    def settings(self, **overrides) -> dict:
        return {
            "jwt_required": True,
            "jwt_issuers": {ISSUER: self.issuer_url},
            "jwt_jku_allowlist": [self.allowed_jku],
            **overrides,
        }


@pytest.fixture(scope="session")
def jwks() -> Iterator[Jwks]:
    ec, rsa, alt = ec_key("ehr-ec-2025"), rsa_key("ehr-rsa-2025"), ec_key("ehr-alt-2025")
    attacker = ec_key("ehr-ec-2025")
    server = JwksServer(
        {
            "issuer": [ec.public_jwk, rsa.public_jwk],
            "allowed-jku": [alt.public_jwk],
            "attacker": [attacker.public_jwk],
        }
    )
    yield Jwks(server, ec, rsa, alt, attacker)
    server.close()


@pytest.fixture
def fhir_stub() -> Iterator[Callable[..., FhirStub]]:
    """Factory: ``fhir_stub("slow", slow_seconds=2)`` starts a stub that stops after the test."""
    started: list[FhirStub] = []

    def start(behaviour: str = "ok", **kwargs) -> FhirStub:
        stub = FhirStub(behaviour, **kwargs).__enter__()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.__exit__()
