"""Read the launched patient's record from the EHR's FHIR server with the SMART access token.

The app asks for exactly what the CDS service's prefetch templates ask for, so it maps the same
data the card was built from.
"""

from __future__ import annotations

from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from ..services import CdsService
from .oauth import SmartError

MAX_PAGES = 5


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=4))
    session.mount("https://", HTTPAdapter(pool_maxsize=4))
    return session


def fetch_patient_record(
    iss: str, access_token: str, patient_id: str, service: CdsService, timeout: float
) -> tuple[dict | None, list[dict]]:
    """(Patient resource, every prefetch query's result as resources or Bundles)."""
    base = iss.rstrip("/") + "/"
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"}
    patient: dict | None = None
    values: list[dict] = []
    with _session() as session:
        for template in service.templates:
            query = template.query.replace("{{context.patientId}}", patient_id)
            url = urljoin(base, query)
            for _page in range(MAX_PAGES):
                try:
                    response = session.get(url, headers=headers, timeout=timeout)
                except requests.RequestException as exc:
                    raise SmartError(f"The FHIR server did not answer ({exc.__class__.__name__})") from None
                if response.status_code in (401, 403):
                    raise SmartError("The FHIR server refused the access token")
                if response.status_code >= 400:
                    if template.required:
                        raise SmartError(f"The FHIR server answered {response.status_code} to {query.split('?')[0]}")
                    break
                body = response.json()
                values.append(body)
                if body.get("resourceType") == "Patient":
                    patient = body
                next_url = next(
                    (link.get("url") for link in body.get("link", []) if link.get("relation") == "next"), None
                )
                if body.get("resourceType") != "Bundle" or not next_url:
                    break
                url = next_url
    return patient, values
