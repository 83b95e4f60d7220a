"""Request bodies for the benchmark: realistic CDS Hooks calls built with tests/fhir_factory.py.

Every hook body carries the placeholder hookInstance below; the load generator replaces its last
12 digits with a counter so that each call is a new hook instance (as in an EHR).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

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
    progression,
)

HOOK_INSTANCE = "00000000-0000-4000-8000-000000000000"
SELECT_SERVICE = "hcc-systemic-therapy-select"

_LAB_SERIES = [  # (LOINC, unit, values over the last weeks)
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
