"""Read the launched patient's record from the EHR's FHIR server with the SMART access token.

The app asks for exactly what the CDS service's prefetch templates ask for, so it maps the same
data the card was built from, through the same guarded client as the hook's fallback fetch (the
``iss`` policy on every page, no redirects, one deadline for the whole record, a byte cap).
"""

from __future__ import annotations

import re

from fhir_mappers.notes import Note

from ..fhir_client import FhirClient
from ..services import USER_TEMPLATE, CdsService
from ..ssrf import FhirServerPolicy
from .oauth import SmartError

# FHIR R4 id (§2.1.28.0.1 datatypes: [A-Za-z0-9\-\.]{1,64}): a patient id from the token response
# goes into search URLs, so anything else (`&`, `/`, `#`) could change what is searched.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def fetch_patient_record(
    iss: str,
    access_token: str,
    patient_id: str,
    service: CdsService,
    *,
    client: FhirClient,
    policy: FhirServerPolicy,
    timeout: float,
) -> tuple[dict | None, list[dict]]:
    """(Patient resource, every prefetch query's result as resources or Bundles)."""
    if not _FHIR_ID.fullmatch(patient_id):
        raise SmartError(Note("smart.patient_id_invalid", "The EHR named the patient with an id that is not a FHIR id"))
    # The record only: the user template names the hook's user, and the app's language follows the browser.
    templates = [t for t in service.templates if t.key != USER_TEMPLATE.key]
    queries = {t.key: t.query.replace("{{context.patientId}}", patient_id) for t in templates}
    outcomes = client.fetch_all(iss, queries, access_token, timeout, policy=policy)
    patient: dict | None = None
    values: list[dict] = []
    for template in templates:
        outcome = outcomes[template.key]
        if outcome.status in (401, 403):
            raise SmartError(Note("smart.token_refused", "The FHIR server refused the access token"))
        if outcome.resource is None:
            if template.required:
                resource_type = queries[template.key].split("?")[0]
                raise SmartError(
                    Note(
                        "smart.resource_unread",
                        "The FHIR server could not give %(resource_type)s: %(error)s",
                        resource_type=resource_type,
                        error=outcome.error or Note("smart.no_answer", "no answer"),
                    )
                )
            continue
        values.append(outcome.resource)
        if outcome.resource.get("resourceType") == "Patient":
            patient = outcome.resource
    return patient, values
