"""Simulated patients for the monitoring tests, drawn from the reconstructed cohort (synthetic, not
patients): a population whose outcomes follow the shipped model, or one shifted on purpose.

Each patient's record is stored on the FHIR server in three steps, as a real record grows: what
was known at the sorafenib order; then sorafenib and its first progression (the second-line
order); then everything after (second-line drugs, later progression, last contact, death). The
service is called at each order, so the audit log holds what it predicted before the outcome.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import requests
from bulk_export import DRUGS, patient_resources
from fhir_factory import SORAFENIB, condition, full_prefetch, hook_request, medication_request

from models.outcomes import resource_dates
from models.reconstruct import DEFAULT_SEED, reconstruct_cohort
from models.registry import load_bundle

SERVICE = "hcc-systemic-therapy-select"
FIRST_ORDER = date(2023, 1, 2)
SITES = ("Site North", "Site South")


@dataclass
class Patient:
    id: str
    row: Any  # the cohort row (a namedtuple)
    start: date
    phases: list[list[dict[str, Any]]] = field(default_factory=list)  # resources per step

    @property
    def second_line_start(self) -> date | None:
        progression = next((r for r in self.phases[1] if r["id"].endswith("-prog1")), None)
        has_second_line = isinstance(self.row.second_line_regimen, str) and self.row.second_line_regimen != ""
        return date.fromisoformat(progression["effectiveDateTime"]) if progression and has_second_line else None


def predicted_risk(afp: bool, alt: bool) -> float:
    return load_bundle().resistance.predict_risk(afp_over_400=afp, alt_over_40=alt).probability


def draw(
    n: int,
    prefix: str,
    seed: int,
    *,
    resistance_factor: float = 1.0,
    afp_share: float | None = None,
) -> list[Patient]:
    """``n`` patients from the reconstructed cohort (the model's training data). Within each AFP/ALT
    pattern, the share with primary resistance is the model's prediction times ``resistance_factor``
    (capped at 0.95); ``afp_share`` sets the share with AFP > 400 (default: the cohort's)."""
    rng = np.random.default_rng(seed)
    cohort = reconstruct_cohort(DEFAULT_SEED)
    afp_rate = cohort.afp_over_400.mean() if afp_share is None else afp_share
    alt_rate = cohort.alt_over_40.mean()
    rows = []
    for afp in (0, 1):
        for alt in (0, 1):
            share = (afp_rate if afp else 1 - afp_rate) * (alt_rate if alt else 1 - alt_rate)
            size = round(n * share)
            primary = round(size * min(0.95, resistance_factor * predicted_risk(bool(afp), bool(alt))))
            pattern = cohort[(cohort.afp_over_400 == afp) & (cohort.alt_over_40 == alt)]
            for resistance, count in (("primary", primary), ("secondary", size - primary)):
                pool = pattern[pattern.resistance == resistance]
                rows.append(pool.iloc[rng.integers(0, len(pool), count)])
    sample = pd.concat(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    patients = []
    for i, row in enumerate(sample.itertuples(index=False)):
        row = row._replace(patient_id=f"{prefix}-{i:03d}")
        start = FIRST_ORDER + timedelta(days=(i * 9) % 360)
        patients.append(Patient(id=row.patient_id, row=row, start=start, phases=_phases(row, start, i)))
    return patients


def _phases(row: Any, start: date, i: int) -> list[list[dict[str, Any]]]:
    diagnosed = (start - timedelta(days=60)).isoformat()
    hepatitis = ("B18.1", "Chronic viral hepatitis B") if row.hbv else ("B18.2", "Chronic viral hepatitis C")
    conditions = [
        condition("C22.0", "Liver cell carcinoma", patient=row.patient_id),
        condition(*hepatitis, patient=row.patient_id),
    ]
    for item, suffix in zip(conditions, ("hcc", "hepatitis"), strict=True):
        item["id"] = f"{row.patient_id}-{suffix}"  # clear of the sandbox patients' resource ids
        item["onsetDateTime"] = diagnosed
    resources = patient_resources(row, start) + conditions
    patient = resources[0]
    patient["gender"] = "male" if row.male else "female"
    patient["birthDate"] = "1955-06-01" if row.age_over_50 else "1980-06-01"
    patient["managingOrganization"] = {"display": SITES[i % 2]}
    alive = {k: v for k, v in patient.items() if k != "deceasedDateTime"}
    progression = next(r for r in resources if r["id"].endswith("-prog1"))
    progressed = date.fromisoformat(progression["effectiveDateTime"])
    # Undated resources (none here) and those dated before the order were known at the order.
    before_order = [alive] + [r for r in resources[1:] if max(resource_dates(r), default=start) < start]
    before_second_line = [
        r
        for r in resources[1:]
        if r not in before_order
        and max(resource_dates(r)) <= progressed
        and not (r["resourceType"] == "MedicationRequest" and r["id"].endswith(("-tki", "-pd1")))
    ]
    rest = [patient] + [r for r in resources[1:] if r not in before_order and r not in before_second_line]
    return [before_order, before_second_line, rest]


def store(fhir_base: str, resources: list[dict[str, Any]]) -> None:
    """One transaction of PUTs (ids kept; a later step replaces the Patient)."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ],
    }
    response = requests.post(fhir_base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=60)
    assert response.status_code == 200, response.text[:500]


def _order(service_url: str, fhir_base: str, patient: Patient, drafts: list[dict[str, Any]], steps: int) -> None:
    """The EHR sends the record known so far as prefetch (as EHRs do: the FHIR test server's
    searches are slow enough to dominate the run otherwise)."""
    known = [r for phase in patient.phases[:steps] for r in phase]
    prefetch = full_prefetch(known, patient.id)
    prefetch["patient"] = known[0]
    body = hook_request("order-select", drafts, patient=patient.id, fhir_server=fhir_base, prefetch=prefetch)
    response = requests.post(f"{service_url}/cds-services/{SERVICE}", json=body, timeout=30)
    assert response.status_code == 200, response.text[:500]


def _draft(drug: dict[str, str], day: date, patient: str) -> dict[str, Any]:
    return medication_request(drug, day.isoformat(), patient=patient, status="draft")


def _second_line_drafts(p: Patient) -> list[dict[str, Any]]:
    assert p.second_line_start is not None
    drafts = [_draft(DRUGS["lenvatinib"], p.second_line_start, p.id)]
    if p.row.second_line_regimen == "tki_pd1":
        drafts.append(_draft(DRUGS["pembrolizumab"], p.second_line_start, p.id))
    return drafts


def run_through_service(service_url: str, fhir_base: str, patients: list[Patient]) -> None:
    """Store each step for everyone, then call the service at each order, a few calls at a time as
    several clinicians would."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        store(fhir_base, [r for p in patients for r in p.phases[0]])
        list(pool.map(lambda p: _order(service_url, fhir_base, p, [_draft(SORAFENIB, p.start, p.id)], 1), patients))
        store(fhir_base, [r for p in patients for r in p.phases[1]])
        second = [p for p in patients if p.second_line_start is not None]
        list(pool.map(lambda p: _order(service_url, fhir_base, p, _second_line_drafts(p), 2), second))
        store(fhir_base, [r for p in patients for r in p.phases[2]])
