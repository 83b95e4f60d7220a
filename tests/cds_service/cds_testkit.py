"""Helpers shared by the CDS service tests: key material, a JWKS server, token and request builders.

Everything here talks real HTTP on 127.0.0.1; nothing patches the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from issued_cards import record_issued_cards
from json_server import JsonServer

HERE = Path(__file__).resolve().parent
SPEC_EXAMPLES = HERE / "spec_examples"
SCHEMAS = HERE / "schemas"

SELECT_SERVICE = "hcc-systemic-therapy-select"
SIGN_SERVICE = "hcc-systemic-therapy-sign"
ISSUER = "https://ehr.example.test/"

# RxNorm SCD "sorafenib 200 MG Oral Tablet" (RxCUI 597747: the rxcui openFDA lists for every
# generic sorafenib 200 mg tablet NDC, and the code fhir_mappers/terminology.yaml maps to sorafenib).
SORAFENIB_CODING = {
    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "code": "597747",
    "display": "sorafenib 200 MG Oral Tablet",
}


def _root_conftest():
    # tests/conftest.py is shadowed as ``conftest`` by this directory's own conftest.py.
    spec = importlib.util.spec_from_file_location("_root_conftest", HERE.parent / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


service_process = _root_conftest().service_process


def spec_example(name: str) -> Any:
    return json.loads((SPEC_EXAMPLES / name).read_text())


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def issue_cards(store, service_id: str, feedback: list[dict[str, Any]]) -> None:
    """Audit an assessment by ``service_id`` that issued the cards (and accepted suggestions) the
    feedback entries name: the service stores feedback only on cards it issued."""
    suggestions: dict[str, list[str]] = {}
    for entry in feedback:
        suggestions.setdefault(entry["card"], []).extend(s["id"] for s in entry.get("acceptedSuggestions", []))
    record_issued_cards(store, service_id, suggestions)


# --- signing keys and the JWKS server ---------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def JwksServer(sets: dict[str, list[dict[str, Any]]]) -> JsonServer:
    """Serves JWK Sets at ``/<name>.json`` and records every path requested (``.requests``)."""
    return JsonServer({f"/{name}.json": {"keys": keys} for name, keys in sets.items()})


# --- tokens -------------------------------------------------------------------------------------


def claims(audience: str | list[str], **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "tenant": "hcc-test-tenant",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], **headers: Any) -> str:
    header = {"kid": key.kid, "typ": "JWT", **headers}
    return jwt.encode(payload, key.private, algorithm=key.alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], kid: str) -> str:
    """``alg: none`` (RFC 7519 §6): header.payload. with an empty signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(key: SigningKey, payload: dict[str, Any]) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the issuer's *public* PEM."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- CDS Hooks requests ---------------------------------------------------------------------------


def sorafenib_order(hook: str = "order-sign", patient_id: str = "hcc-patient-1") -> dict[str, Any]:
    """A CDS Hooks request whose draft order is first-line sorafenib 400 mg twice daily."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "draft-sorafenib-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [SORAFENIB_CODING], "text": "sorafenib 200 mg tablet"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "dosageInstruction": [
            {
                "text": "400 mg orally twice daily",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": 400, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
                ],
            }
        ],
    }
    context: dict[str, Any] = {
        "userId": "Practitioner/onc-1",
        "patientId": patient_id,
        "encounterId": "enc-1",
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
    }
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-sorafenib-1"]
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}


def with_fhir_server(body: dict[str, Any], base: str, token: str = "stub-access-token-7f3a") -> dict[str, Any]:
    return {
        **body,
        "fhirServer": base,
        "fhirAuthorization": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Observation.read user/Condition.read",
            "subject": "hcc-cds-service",
        },
    }


def all_null_prefetch(keys: list[str]) -> dict[str, None]:
    """Every key sent as null ("the EHR has no data"): nothing to fetch, no 412."""
    return {key: None for key in keys}
