"""A PHI-free patient key for the audit log: an HMAC of the patient id, never the id itself.

The monitoring job matches an audit row to a patient by hashing candidate ids it reads from the
FHIR server under the same secret; without the secret the digest names nobody.

The HMAC message is UTF-8 ``"<fhirServer>\\n<patient id>"``: the FHIR base URL as the service
reads ``fhirServer`` (normalised by pydantic's ``AnyHttpUrl``: lower-case scheme and host) without
a trailing ``/``, or "" for a call without one; a line feed; then the logical id as CDS Hooks sends
it in ``context.patientId`` (``123``, not ``Patient/123``). Neither part may hold a line feed, so
no two pairs share a message, and the same id on two FHIR servers gets two digests. The digest is
lower-case hex SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import AnyHttpUrl, TypeAdapter

if TYPE_CHECKING:
    from .settings import Settings

# Demo only: a fixed key so demo audit rows stay matchable across restarts. It is no secret (it is
# in the source); production refuses to start without CDS_AUDIT_PATIENT_KEYS.
DEMO_KEY_ID = "demo-only-not-secret"
DEMO_SECRET = b"demo-only-patient-key-published-in-source-not-secret"


class PatientKeyer:
    """HMAC-SHA256 of a patient id under a deployment secret; the id itself is never stored.

    Bound to one FHIR server (``for_server``) before use: the server is part of the message."""

    def __init__(self, secrets: Mapping[str, bytes], current: str, *, fhir_server: str | None = None) -> None:
        if current not in secrets:
            raise ValueError("the current key id is not among the secrets")
        self._secrets = dict(secrets)
        self.current = current
        self.fhir_server = _normalised(fhir_server) if fhir_server is not None else None

    @classmethod
    def from_settings(cls, settings: Settings) -> PatientKeyer:
        """Keys from ``CDS_AUDIT_PATIENT_KEYS``; in demo without any, the demo-only key."""
        current = settings.current_patient_key_id
        if not settings.audit_patient_keys or current is None:
            if settings.environment == "production":  # settings refuse this already; never fall back
                raise ValueError("production needs CDS_AUDIT_PATIENT_KEYS")
            return cls({DEMO_KEY_ID: DEMO_SECRET}, DEMO_KEY_ID)
        secrets = {key_id: secret.get_secret_value().encode() for key_id, secret in settings.audit_patient_keys.items()}
        return cls(secrets, current)

    def for_server(self, fhir_server: str) -> PatientKeyer:
        """The same secrets, digesting ids of the patients on ``fhir_server`` (a FHIR base URL)."""
        return PatientKeyer(self._secrets, self.current, fhir_server=fhir_server)

    @property
    def key_ids(self) -> list[str]:
        return list(self._secrets)

    def key(self, patient_id: str) -> tuple[str, str]:
        """(key id, hex digest) under the current secret: what a new audit row records."""
        return self.current, self._hmac(self._secrets[self.current], patient_id)

    def digest(self, patient_id: str, key_id: str) -> str | None:
        """The digest under the secret ``key_id`` (an older one after rotation); None if unknown."""
        secret = self._secrets.get(key_id)
        return None if secret is None else self._hmac(secret, patient_id)

    def _hmac(self, secret: bytes, patient_id: str) -> str:
        if self.fhir_server is None:
            raise RuntimeError("PatientKeyer needs a FHIR server: use keyer.for_server(fhir_base_url)")
        if "\n" in patient_id or "\n" in self.fhir_server:
            raise ValueError("a patient id or FHIR server holding a line feed has no unambiguous digest")
        message = f"{self.fhir_server}\n{patient_id}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()


_URL = TypeAdapter(AnyHttpUrl)


def _normalised(fhir_server: str) -> str:
    """The base URL as ``HookRequest.fhir_base`` gives it, so a job given the URL in another case
    or with a trailing slash finds the same digests."""
    return str(_URL.validate_python(fhir_server)).rstrip("/") if fhir_server else ""
