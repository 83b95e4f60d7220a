"""Request bodies for the benchmark: realistic CDS Hooks calls built with tests/fhir_factory.py.

Every hook body carries the placeholder hookInstance below; the load generator replaces its last
12 digits with a counter so that each call is a new hook instance (as in an EHR).
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))  # after the packages: tests/fhir_mappers must not shadow fhir_mappers

from fhir_factory import (  # noqa: E402  (test-data builders live beside the tests)
    AMOXICILLIN,
    LENVATINIB,
    SORAFENIB,
    afp,
    alt,
    condition,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    lab,
    medication_request,
    procedure,
    progression,
)

HOOK_INSTANCE = "00000000-0000-4000-8000-000000000000"
SELECT_SERVICE = "hcc-systemic-therapy-select"

_LAB_SERIES: list[tuple[str, str, list[float]]] = [  # (LOINC, unit, values over the last weeks)
    ("1834-1", "ng/mL", [980, 1100, 1250]),  # AFP
    ("1742-6", "U/L", [48, 55, 65]),  # ALT
    ("1920-8", "U/L", [52, 60, 71]),  # AST
    ("1975-2", "mg/dL", [1.1, 1.2, 1.3]),  # bilirubin
    ("1751-7", "g/dL", [3.6, 3.5, 3.4]),  # albumin
    ("777-3", "10*3/uL", [160, 150, 142]),  # platelets
    ("6301-6", "{INR}", [1.1, 1.1, 1.2]),  # INR
]
_LAB_DATES = ["2026-10-20", "2026-11-01", "2026-11-12"]


def _labs() -> list[dict[str, Any]]:
    return [
        lab(code, value, unit, when)
        for code, unit, values in _LAB_SERIES
        for value, when in zip(values, _LAB_DATES, strict=True)
    ]


def _tumour_and_cirrhosis() -> list[dict[str, Any]]:
    size = lab("21889-1", 46, "mm", "2026-11-05")
    del size["category"]  # an imaging finding, not a laboratory result: goes to the "tumour" key
    return [size, condition("K74.60", "Unspecified cirrhosis of liver")]


def _with_instance(body: dict[str, Any]) -> dict[str, Any]:
    body["hookInstance"] = HOOK_INSTANCE
    return body


def fast_path() -> dict[str, Any]:
    """An order the service has no evidence about (amoxicillin): answered with no cards."""
    draft = medication_request(AMOXICILLIN, "2026-11-20", status="draft", rid="draft-amox")
    return _with_instance(hook_request("order-select", [draft]))


def first_line() -> dict[str, Any]:
    """Sorafenib ordered; 30 resources prefetched (21 labs, tumour size, conditions, history, patient)."""
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-sora")
    resources = [
        *_labs(),
        *hcc_hbv_conditions(),
        *_tumour_and_cirrhosis(),
        medication_request(
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "197361",
                "display": "amlodipine 5 MG Oral Tablet",
            },
            "2026-06-01",
        ),
        medication_request(
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "861004",
                "display": "metformin 500 MG Oral Tablet",
            },
            "2026-06-01",
        ),
        medication_request(
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "1648755",
                "display": "entecavir 0.5 MG Oral Tablet",
            },
            "2025-01-10",
        ),
    ]
    return _with_instance(hook_request("order-select", [draft], prefetch=full_prefetch(resources)))


def second_line() -> dict[str, Any]:
    """Lenvatinib ordered after sorafenib failed (progression at 2 months): Cox survival estimates."""
    draft = medication_request(LENVATINIB, "2026-11-20", status="draft", rid="draft-lenva")
    resources = [
        *_labs(),
        *hcc_hbv_conditions(),
        *_tumour_and_cirrhosis(),
        medication_request(SORAFENIB, "2026-03-01", status="completed"),
        progression("2026-05-01"),
        afp(400, "2026-02-20"),
        alt(40, "2026-02-20"),
    ]
    return _with_instance(hook_request("order-select", [draft], prefetch=full_prefetch(resources)))


# Lab codes the service does not map (sodium, potassium, creatinine, haemoglobin, leucocytes,
# glucose, urea, CRP): a real history is mostly results the mappers must pass over.
_OTHER_LABS: list[tuple[str, str, float]] = [
    ("2951-2", "mmol/L", 139),
    ("2823-3", "mmol/L", 4.1),
    ("2160-0", "mg/dL", 0.93),
    ("718-7", "g/dL", 12.9),
    ("6690-2", "10*3/uL", 5.6),
    ("2345-7", "mg/dL", 104),
    ("3094-0", "mg/dL", 15),
    ("1988-5", "mg/L", 6.2),
]
_ORDER_DAY = date(2026, 11, 20)
_LOCAL = "http://hospital.example/codes"  # a hospital's own codes for the imaging study
_OTHER_DRUGS = [
    {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "197361",
        "display": "amlodipine 5 MG Oral Tablet",
    },
    {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "861004",
        "display": "metformin 500 MG Oral Tablet",
    },
    {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "1648755",
        "display": "entecavir 0.5 MG Oral Tablet",
    },
]


def long_history(total: int) -> dict[str, Any]:
    """First-line sorafenib order with `total` prefetched resources (the Patient included) over
    years: ~96% labs of 15 codes (7 the models read, 8 they do not), a result every ~3 days per
    code, the newest a week before the order; then quarterly tumour-size studies with their
    DiagnosticReports and procedures, medication requests and five conditions."""
    rare = max(total // 100, 1)  # each non-lab family: ~1% of the record
    resources: list[dict[str, Any]] = [
        *hcc_hbv_conditions(),
        condition("K74.60", "Unspecified cirrhosis of liver"),
        condition("I10", "Essential (primary) hypertension"),
        condition("E11.9", "Type 2 diabetes mellitus without complications"),
    ]
    for i in range(rare):
        day = (_ORDER_DAY - timedelta(days=15 + 90 * i)).isoformat()
        size = lab("21889-1", 46 - (i % 5), "mm", day)
        del size["category"]  # an imaging finding: the "tumour" prefetch key
        resources.append(size)
        resources.append(
            {
                "resourceType": "DiagnosticReport",
                "id": f"report-{size['id']}",
                "status": "final",
                "code": {"coding": [{"system": _LOCAL, "code": "CT-LIVER", "display": "CT liver, triphasic"}]},
                "effectiveDateTime": day,
                "result": [{"reference": f"Observation/{size['id']}"}],
            }
        )
        resources.append(procedure("CT-LIVER", "CT liver, triphasic", day, system=_LOCAL))
        resources.append(medication_request(_OTHER_DRUGS[i % len(_OTHER_DRUGS)], day, status="completed"))
    series = [(code, unit, values[-1]) for code, unit, values in _LAB_SERIES] + _OTHER_LABS
    for i in range(total - 1 - len(resources)):  # the Patient is the last one
        code, unit, value = series[i % len(series)]
        taken = _ORDER_DAY - timedelta(days=7 + 3 * (i // len(series)))
        resources.append(lab(code, value, unit, taken.isoformat()))
    draft = medication_request(SORAFENIB, _ORDER_DAY.isoformat(), status="draft", rid="draft-sora")
    return _with_instance(hook_request("order-select", [draft], prefetch=full_prefetch(resources)))


def feedback() -> dict[str, Any]:
    """One overridden card; the generator makes each card id unique."""
    return {
        "feedback": [
            {
                "card": HOOK_INSTANCE,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "system": "http://example.org/reasons",
                        "code": "patient-preference",
                        "display": "Patient preference",
                    },
                    "userComment": "Discussed with the patient.",
                },
                "outcomeTimestamp": "2026-11-20T10:15:00+00:00",
            }
        ]
    }


def resource_count(body: dict[str, Any]) -> int:
    total = 0
    for value in (body.get("prefetch") or {}).values():
        if value is None:
            continue
        total += len(value.get("entry", [])) if value.get("resourceType") == "Bundle" else 1
    return total
