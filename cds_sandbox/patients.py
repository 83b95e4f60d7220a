"""The synthetic patients the sandbox loads: its own two (``patients/*.json``) and, in a source
checkout, the clinical vignettes (``tests/vignettes``), each with its one-line description.

A vignette's draft order is not stored: the demo EHR writes the order the user picks. Each
patient keeps the date its record was written against (``order_date``), and the demo orders are
dated that day, so the labs stay inside the service's look-back window whatever today is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

HERE = Path(__file__).resolve().parent
OWN_PATIENTS = HERE / "patients"
CHECKOUT_VIGNETTES = HERE.parent / "tests" / "vignettes"
# The date tests/e2e orders on (test_smart_app.AS_OF); the records' dates are written against it.
OWN_ORDER_DATE = "2025-06-02"


@dataclass(frozen=True)
class SandboxPatient:
    id: str
    label: str
    description: str
    order_date: str
    resources: tuple[Resource, ...]
    drafted_drug: str | None = None  # the drug the vignette orders, preselected on the page

    def transaction(self) -> Resource:
        """The record as one transaction Bundle of PUTs (ids kept, so links between resources hold)."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in self.resources
            ],
        }

    def listing(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "description": self.description,
            "orderDate": self.order_date,
            "draftedDrug": self.drafted_drug,
        }


def own_patients(directory: Path = OWN_PATIENTS) -> list[SandboxPatient]:
    """The sandbox's transaction Bundles; the description is the bundle's `synthetic` tag."""
    patients = []
    for path in sorted(directory.glob("*.json")):
        bundle = json.loads(path.read_text())
        resources = tuple(entry["resource"] for entry in bundle["entry"])
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        name = patient.get("name", [{}])[0]
        label = " ".join([*name.get("given", []), name.get("family", "")]).strip() or patient["id"]
        description = next(t["display"] for t in bundle["meta"]["tag"] if t["code"] == "synthetic")
        patients.append(SandboxPatient(patient["id"], label, description, OWN_ORDER_DATE, resources))
    return patients


def vignette_patients(directory: Path = CHECKOUT_VIGNETTES) -> list[SandboxPatient]:
    """One patient per vignette, in the yaml's order; [] outside a source checkout."""
    index = directory / "vignettes.yaml"
    if not index.is_file():
        return []
    patients = []
    for vignette in yaml.safe_load(index.read_text())["vignettes"]:
        bundle = json.loads((directory / "bundles" / vignette["bundle"]).read_text())
        resources = [entry["resource"] for entry in bundle["entry"]]
        drafts = [r for r in resources if r["resourceType"] == "MedicationRequest" and r.get("status") == "draft"]
        record = tuple(r for r in resources if not any(r is d for d in drafts))
        patient = next(r for r in record if r["resourceType"] == "Patient")
        drafted = drafts[0].get("medicationCodeableConcept", {}).get("coding", [{}])[0].get("code") if drafts else None
        patients.append(
            SandboxPatient(
                id=patient["id"],
                label=f"{vignette['id']} ({vignette['scenario'].replace('_', ' ')})",
                description=vignette["description"],
                order_date=(drafts[0].get("authoredOn") if drafts else None) or "",
                resources=record,
                drafted_drug=drafted,
            )
        )
    return patients


def all_patients() -> list[SandboxPatient]:
    return own_patients() + vignette_patients()


def summarise(resource: Resource) -> dict[str, str]:
    """One line a clinician reads: what, value or status, when."""
    kind = resource["resourceType"]
    concept = (
        resource.get("code")
        or resource.get("medicationCodeableConcept")
        or resource.get("medicationReference")
        or resource.get("event")
        or {}
    )
    what = _text(concept) or kind
    if kind == "Patient":
        what = f"{resource.get('gender', 'unknown gender')}, born {resource.get('birthDate', 'unknown')}"
    value = ""
    if "valueQuantity" in resource:
        quantity = resource["valueQuantity"]
        value = f"{quantity.get('value')} {quantity.get('unit') or quantity.get('code') or ''}".strip()
    elif "valueCodeableConcept" in resource:
        value = _text(resource["valueCodeableConcept"])
    elif "valueString" in resource:
        value = str(resource["valueString"])
    status = resource.get("status") or _text(resource.get("clinicalStatus") or {})
    when = (
        resource.get("effectiveDateTime")
        or resource.get("onsetDateTime")
        or resource.get("performedDateTime")
        or resource.get("authoredOn")
        or (resource.get("effectivePeriod") or resource.get("performedPeriod") or {}).get("start")
        or resource.get("recordedDate")
        or ""
    )
    return {"type": kind, "what": what, "value": value, "status": str(status or ""), "date": str(when)}


def _text(concept: Any) -> str:
    if isinstance(concept, list):
        return "; ".join(filter(None, (_text(c) for c in concept)))
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    if concept.get("display"):  # a Reference
        return str(concept["display"])
    codings = concept.get("coding") or []
    return "; ".join(str(c.get("display") or c.get("code") or "") for c in codings if isinstance(c, dict))
