"""Who each audited assessment was about, and what happened to them, read from the FHIR server.

The audit log holds an HMAC digest of the patient id, never the id. The job hashes candidate ids
with the same secrets (``PatientKeyer``) and keeps the matches in memory only: no id is written to
the report, the log or the disk. Candidates come from a file the hospital supplies
(``--patients``) or, by default, from ``Patient?_elements=id`` on the FHIR server, paged.

Each matched patient's record is read with the queries the service itself prefetches (same
terminology, same outbound client and address policy), then mapped with ``fhir_mappers`` and
``models.outcomes``, the code that labelled the training data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.resources import iter_resources
from fhir_mappers.terminology import Terminology
from hcc_evidence import load_evidence
from hcc_evidence.errors import HccCdsError
from models import outcomes

from ..fhir_client import FetchError, FhirClient, bundle_entries, next_page
from ..patient_key import PatientKeyer
from ..prefetch import render
from ..services import prefetch_templates
from ..ssrf import FhirServerPolicy

# A batch job may wait longer than a clinician: each page or patient read gets this long.
READ_SECONDS = 30.0
SEARCH_PAGE_SIZE = 1000
UNKNOWN = "unknown"


class MonitorReadError(HccCdsError):
    """The FHIR server could not be read at all (search refused, unreachable)."""


def candidates_from_file(path: Path) -> Iterator[str]:
    """One patient id a line (``Patient/`` prefix allowed); blank lines and ``#`` comments skipped."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            value = line.strip().removeprefix("Patient/")
            if value and not value.startswith("#"):
                yield value


def candidates_from_server(client: FhirClient, base: str, token: str | None, policy: FhirServerPolicy) -> Iterator[str]:
    """Every Patient id the job may read, page by page (``_elements=id``: nothing else is sent)."""
    url: str | None = urljoin(base.rstrip("/") + "/", f"Patient?_elements=id&_count={SEARCH_PAGE_SIZE}")
    while url:
        try:
            page = client.get_fhir(url, token, time.monotonic() + READ_SECONDS, policy)
        except FetchError as exc:
            raise MonitorReadError(f"the Patient search failed: {exc.reason}") from None
        for entry in bundle_entries(page):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and isinstance(resource.get("id"), str):
                yield resource["id"]
        url = next_page(page, base)


def match_digests(
    keyer: PatientKeyer, wanted: set[tuple[str, str]], candidates: Iterable[str]
) -> dict[tuple[str, str], str]:
    """(key id, digest) → patient id, for each wanted pair some candidate hashes to."""
    key_ids = sorted({key_id for key_id, _ in wanted})
    found: dict[tuple[str, str], str] = {}
    for patient_id in candidates:
        for key_id in key_ids:
            pair = (key_id, keyer.digest(patient_id, key_id) or "")
            if pair in wanted:
                found[pair] = patient_id
        if len(found) == len(wanted):
            break
    return found


@dataclass(frozen=True)
class Subgroups:
    """The subgroups a patient's figures are broken down by, read at monitoring time."""

    aetiology: str
    child_pugh: str
    sex: str
    age_band: str
    site: str


@dataclass(frozen=True)
class PatientOutcome:
    first_line: outcomes.FirstLine
    second_line: outcomes.SecondLine | None
    at_first_line: Subgroups  # at the sorafenib start (or the assessment day without one)
    at_second_line: Subgroups  # at the second-line start (or the assessment day without one)


class RecordReader:
    """Reads one patient's record with the service's prefetch queries and maps the outcomes."""

    def __init__(
        self,
        client: FhirClient,
        base: str,
        token: str | None,
        policy: FhirServerPolicy,
        terminology: Terminology,
        lab_lookback_days: int,
        imaging_lookback_days: int,
        labs_prefetch: Literal["codes", "category"] = "codes",
    ) -> None:
        self.client, self.base, self.token, self.policy = client, base, token, policy
        self.terminology = terminology
        self.lookbacks = {"lab_lookback_days": lab_lookback_days, "imaging_lookback_days": imaging_lookback_days}
        # The patient's own queries: a template about the user (e.g. the ordering practitioner) has
        # no value in a batch job and cannot be filled without a hook call.
        self.templates = [t for t in prefetch_templates(terminology, labs_prefetch) if _about_the_patient(t.query)]

    def resources(self, patient_id: str) -> list[dict[str, Any]] | None:
        """The patient's resources, or None when the Patient or a required query could not be read."""
        queries = {t.key: render(t.query, {"patientId": patient_id}) for t in self.templates}
        answers = self.client.fetch_all(self.base, queries, self.token, READ_SECONDS, self.policy)
        required = {t.key for t in self.templates if t.required}
        if any(answers[key].resource is None for key in required):
            return None
        return list(iter_resources([a.resource for a in answers.values() if a.resource is not None]))

    def outcome(self, resources: list[dict[str, Any]], assessed_on: date) -> PatientOutcome:
        history = map_treatment_history(resources, terminology=self.terminology)
        death = outcomes.death_date(resources)
        start = history.sorafenib_start.value
        contact = outcomes.last_contact(resources, start or assessed_on)
        first = outcomes.first_line(history, death, contact if start else None)
        second = outcomes.second_line(history, death, contact)
        return PatientOutcome(
            first_line=first,
            second_line=second,
            at_first_line=self.subgroups(resources, first.sorafenib_start or assessed_on),
            at_second_line=self.subgroups(resources, second.start if second else assessed_on),
        )

    def subgroups(self, resources: list[dict[str, Any]], as_of: date) -> Subgroups:
        features = map_patient_features(resources, as_of=as_of, terminology=self.terminology, **self.lookbacks)
        patient = next((r for r in resources if r.get("resourceType") == "Patient"), {})
        gender = patient.get("gender")
        return Subgroups(
            aetiology=features.aetiology.value or UNKNOWN,
            child_pugh=features.child_pugh_class.value or UNKNOWN,
            sex=gender if isinstance(gender, str) and gender in ("male", "female", "other") else UNKNOWN,
            age_band=_age_band(patient.get("birthDate"), as_of),
            site=_site(patient),
        )


def _about_the_patient(query: str) -> bool:
    try:
        render(query, {"patientId": "x"})
    except KeyError:
        return False
    return True


def _age_band(birth: object, as_of: date) -> str:
    """Over or not over the study's age threshold (Table 1: age > 50), at ``as_of``."""
    from fhir_mappers.fhirdates import parse_fhir_date

    born = parse_fhir_date(birth)
    if born is None:
        return UNKNOWN
    threshold = load_evidence().thresholds.age_years
    age = as_of.year - born.earliest.year - ((as_of.month, as_of.day) < (born.earliest.month, born.earliest.day))
    return f"over {threshold:g}" if age > threshold else f"{threshold:g} or under"


def _site(patient: dict[str, Any]) -> str:
    """The managing organisation's name (the hospital site), else its reference; never the patient."""
    organisation = patient.get("managingOrganization")
    if not isinstance(organisation, dict):
        return UNKNOWN
    for value in (organisation.get("display"), organisation.get("reference")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return UNKNOWN
