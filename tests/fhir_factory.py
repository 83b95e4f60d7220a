"""Builders for realistic FHIR R4 test resources and CDS Hooks requests (test data only)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
UCUM = "http://unitsofmeasure.org"
LIS = "http://lis.hospital.example.cn/codes"  # a Chinese hospital's laboratory system

SORAFENIB = {"system": RXNORM, "code": "495881", "display": "sorafenib"}
LENVATINIB = {"system": RXNORM, "code": "1603296", "display": "lenvatinib"}
PEMBROLIZUMAB = {"system": RXNORM, "code": "1547545", "display": "pembrolizumab"}
AMOXICILLIN = {"system": RXNORM, "code": "617993", "display": "Amoxicillin 120 MG/ML Oral Suspension"}

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def lab(
    loinc: str,
    value: float,
    unit: str,
    when: str,
    *,
    ucum: str | None = None,
    status: str = "final",
    comparator: str | None = None,
    patient: str = "p1",
) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value, "unit": unit, "system": UCUM, "code": ucum or unit}
    if comparator:
        quantity["comparator"] = comparator
    return {
        "resourceType": "Observation",
        "id": _id("lab"),
        "status": status,
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


def local_lab(
    rid: str, code: str, when: str, *, display: str | None = None, text: str | None = None, **value: Any
) -> dict[str, Any]:
    """A lab under a hospital's local code, known by its display or text (e.g. 甲胎蛋白); `value`
    is its value[x], e.g. valueString=">1210 ng/mL"."""
    coding = {"system": LIS, "code": code, **({"display": display} if display else {})}
    concept: dict[str, Any] = {"coding": [coding], **({"text": text} if text is not None else {})}
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": concept,
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        **value,
    }


def afp(value: float, when: str, unit: str = "ng/mL", **kw) -> dict[str, Any]:
    return lab("1834-1", value, unit, when, **kw)


def alt(value: float, when: str, unit: str = "U/L", **kw) -> dict[str, Any]:
    return lab("1742-6", value, unit, when, **kw)


def condition(code: str, display: str, system: str = ICD10, patient: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": _id("cond"),
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def hcc_hbv_conditions(patient: str = "p1") -> list[dict[str, Any]]:
    return [
        condition("C22.0", "Liver cell carcinoma", patient=patient),
        condition("B18.1", "Chronic viral hepatitis B without delta-agent", patient=patient),
    ]


def medication_request(
    coding: dict,
    authored: str,
    *,
    status: str = "active",
    rid: str | None = None,
    patient: str = "p1",
    intent: str = "order",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid or _id("medrx"),
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": {"coding": [coding], "text": coding.get("display")},
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": authored,
    }


def procedure(
    code: str, display: str, performed: str, *, system: str = SNOMED, status: str = "completed", patient: str = "p1"
) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": _id("proc"),
        "status": status,
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient}"},
        "performedDateTime": performed,
    }


def endoscopy(performed: str, patient: str = "p1") -> dict[str, Any]:
    """An upper endoscopy (EGD), as IMbrave150 required within 6 months of atezolizumab + bevacizumab."""
    return procedure("76009000", "Esophagogastroduodenoscopy", performed, patient=patient)


def progression(when: str, patient: str = "p1") -> dict[str, Any]:
    """mCODE CancerDiseaseStatus: 'patient's condition worsened' (radiological progression)."""
    return {
        "resourceType": "Observation",
        "id": _id("status"),
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "97509-4", "display": "Cancer disease progression"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueCodeableConcept": {
            "coding": [{"system": SNOMED, "code": "271299001", "display": "Patient's condition worsened (finding)"}]
        },
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def hook_request(
    hook: str,
    draft_orders: list[dict[str, Any]],
    *,
    prefetch: dict[str, Any] | None = None,
    selections: list[str] | None = None,
    patient: str = "p1",
    fhir_server: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-1",
        "patientId": patient,
        "encounterId": "enc-1",
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in draft_orders],
        },
    }
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"{r['resourceType']}/{r['id']}" for r in draft_orders]
        )
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "hcc-cds",
        }
    return body


def full_prefetch(patient_resources: list[dict[str, Any]], patient: str = "p1") -> dict[str, Any]:
    """Distribute resources over the service's prefetch keys, as an EHR would fill the templates."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in patient_resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    observations = by_type.get("Observation", [])
    labs = [
        o
        for o in observations
        if any(c.get("code") == "laboratory" for cat in o.get("category", []) for c in cat.get("coding", []))
    ]
    others = [o for o in observations if o not in labs]
    return {
        "patient": {"resourceType": "Patient", "id": patient, "gender": "male", "birthDate": "1960-05-01"},
        "labs": searchset(labs),
        "tumour": searchset(others),
        "reports": searchset(by_type.get("DiagnosticReport", [])),
        "conditions": searchset(by_type.get("Condition", [])),
        "procedures": searchset(by_type.get("Procedure", [])),
        "medicationRequests": searchset(by_type.get("MedicationRequest", [])),
        "medicationStatements": searchset(by_type.get("MedicationStatement", [])),
        "medicationAdministrations": searchset(by_type.get("MedicationAdministration", [])),
        "adverseEvents": searchset(by_type.get("AdverseEvent", [])),
        "user": None,  # the user's Practitioner (the cards' language): the EHR has none to give
    }
