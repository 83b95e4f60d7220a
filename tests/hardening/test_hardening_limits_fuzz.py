"""Issue 22, item 5: dates and numbers at their limits anywhere in a hook call never give a 5xx.

Every date, dateTime, instant and Period the mappers read (and a few they do not read, which must
be ignored just as safely), every number (lab values, reference ranges, ages, tumour count, doses,
Ratios), the context ids and ``fhirAuthorization.expires_in`` take values at the edge of what
JSON, FHIR and Python's ``date`` can hold, in prefetched data and in what a FHIR server answers.
The answer must be 200 with a valid CDS Hooks response, or a 4xx in the project's error shape;
never a 5xx.

The property-based tests go through Flask's test client (hundreds of calls in seconds), with a
fixed derandomized profile. A handful of the extreme cases are sent over HTTP to the service as
deployed (gunicorn), and so are the 500s this fuzz found in cds_service/fhir_client.py (expected
failures until that module is fixed: it is not edited here).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from fhir_factory import (  # noqa: E402
    LENVATINIB,
    LOINC,
    SNOMED,
    SORAFENIB,
    UCUM,
    condition,
    full_prefetch,
    hook_request,
    searchset,
)
from fhir_stub import FhirStub  # noqa: E402
from hardening_kit import SELECT, SIGN, gunicorn_service  # noqa: E402
from hook_calls import check_response  # noqa: E402

from cds_service import create_app  # noqa: E402
from cds_service.settings import Settings  # noqa: E402

ORDER_DATE = "2026-11-20"
# The shipped terminology names no tumour-count code (none could be confirmed); a hospital adds its
# own, and so does this test, so that the count's numbers are fuzzed too.
TUMOUR_COUNT_CODE = "LOCAL-TUMOUR-COUNT"
HOSPITAL_TERMINOLOGY = f"""\
version: 1
extends: default
imaging:
  tumour_count: [{{system: "{LOINC}", code: "{TUMOUR_COUNT_CODE}"}}]
"""


# -- values at the limits ------------------------------------------------------------------------


class Raw(str):
    """A JSON number literal sent exactly as written (1e309, 400 decimals): Python's json module
    would round it, or write Infinity, before the service could see it."""


DATE_LIMITS: list[Any] = [
    "0001-01-01",
    "0001-01",
    "0001",
    "9999-12-31",
    "9999-12",
    "9999",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999999+14:00",
    "9999-12-31T23:59:60Z",
    "2016-12-31T23:59:60Z",
    "2026-11-10T23:59:60+14:00",
    "2026-11-10T00:00:00-14:00",
    "2026-11-20T23:59:59+14:00",
    "2023-02-29",
    "2100-02-29",
    "2024-02-29",
    "2023-02",
    "2026",
    "2026-11",
    "0000-01-01",
    "0000",
    "2026-13-01",
    "2026-00-10",
    "2026-11-31",
    "2026-11-00",
    "2026-11-10T",
    "2026-11-10T25:61:61Z",
    "10000-01-01",
    "-0001-01-01",
    "+2026-11-10",
    "2026-1-1",
    "20261110",
    "",
    " ",
    "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0661\u0660",
    "2026-11-10\u0000",
    "9" * 4000,
    20261110,
    0,
    -1,
    1e308,
    True,
    None,
    [],
    {},
    ["2026-11-10"],
    {"start": "2026-11-10"},
]
NUMBER_LIMITS: list[Any] = [
    0,
    -0.0,
    Raw("-0"),
    -1,
    -1e308,
    1e308,
    5e-324,
    -5e-324,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    Raw("1e309"),
    Raw("-1e309"),
    Raw("1e-400"),
    Raw("1" + "0" * 30),
    Raw("1" + "0" * 400),
    Raw("0." + "3" * 500),
    Raw("1234.5678901234567890123456789"),
    0.1,
    1e-7,
    400.0000000000001,
    True,
    False,
    "80",
    "1e309",
    "NaN",
    "Infinity",
    None,
    [],
    {},
    {"value": 1},
]
COMPARATORS: list[Any] = ["<", "<=", ">=", ">", "ad", "", "=", " <", None, 5, True]
PERIOD_LIMITS: list[Any] = [
    {},
    {"start": None},
    {"end": "0001"},
    {"start": "9999-12-31", "end": "0001-01-01"},
    {"start": "0001-01-01T00:00:00+14:00", "end": "9999-12-31T23:59:60-14:00"},
    "2026-11-10",
    [],
    5,
    None,
]
UNITS: list[Any] = ["ng/mL", "ug/mL", "IU/mL", "ng/L", "mg/dL", "umol/L", "g/dL", "%", "", " ", None, 5, "10*9/L"]
ID_LIMITS: list[Any] = [
    "p1",
    "",
    " ",
    "x" * 5000,
    "../Patient/p2",
    "p1?x=1&_include=*",
    "{{context.userId}}",
    "p1\u0000",
    "\ud7ff\ue000\U0010ffff",
    "\ud800",
    "Practitioner/",
    "Practitioner/dr-1/_history/2",
    "PractitionerRole/r",
    "/",
    0,
    -1,
    1e308,
    True,
    None,
    [],
    {},
]
EXPIRES_LIMITS: list[Any] = [
    0,
    -1,
    1,
    300,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    1e308,
    Raw("1e309"),
    1.5,
    -0.0,
    "300",
    "",
    True,
    None,
    [],
    {},
]


# -- a record with a slot in every date and number field --------------------------------------


ABSENT = object()  # a slot's default when the realistic record leaves the element out


class Slot:
    """A field of the record the fuzzer may set; `kind` says which values it takes (a date, a
    number, a unit, ...), `default` is the realistic value."""

    def __init__(self, name: str, default: Any, kind: str):
        self.name, self.default, self.kind = name, default, kind


def D(name: str, default: str) -> Slot:
    return Slot(name, default, "date")


def N(name: str, default: float) -> Slot:
    return Slot(name, default, "number")


def U(name: str, default: Any) -> Slot:
    return Slot(name, default, "unit")


def C(name: str) -> Slot:
    return Slot(name, ABSENT, "comparator")


def Q(name: str) -> Slot:
    return Slot(name, ABSENT, "quantity_id")


def P(name: str, default: dict) -> Slot:
    return Slot(name, default, "period")


def _lab(rid: str, loinc: str, value: float, unit: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": D(f"{rid}.effectiveDateTime", when),
        "issued": D(f"{rid}.issued", when + "T12:00:00+01:00"),
        "valueQuantity": {
            "value": N(f"{rid}.value", value),
            "unit": U(f"{rid}.unit", unit),
            "system": UCUM,
            "code": U(f"{rid}.code", unit),
            "comparator": C(f"{rid}.comparator"),
            "id": Q(f"{rid}.quantity-id"),
        },
        "referenceRange": [
            {
                "low": {"value": N(f"{rid}.referenceRange.low", 0), "unit": unit},
                "high": {"value": N(f"{rid}.referenceRange.high", 40), "unit": unit},
                "age": {"low": {"value": N(f"{rid}.referenceRange.age", 18), "unit": "a"}},
            }
        ],
    }


def _dosage(prefix: str, when: str) -> list[dict[str, Any]]:
    return [
        {
            "timing": {
                "event": [D(f"{prefix}.timing.event", when)],
                "repeat": {
                    "boundsPeriod": P(
                        f"{prefix}.boundsPeriod",
                        {
                            "start": D(f"{prefix}.boundsPeriod.start", when),
                            "end": D(f"{prefix}.boundsPeriod.end", "2027-01-01"),
                        },
                    ),
                    "frequency": N(f"{prefix}.frequency", 2),
                    "period": N(f"{prefix}.period", 1),
                },
            },
            "doseAndRate": [
                {
                    "doseQuantity": {"value": N(f"{prefix}.dose", 400), "unit": "mg"},
                    "rateRatio": {
                        "numerator": {"value": N(f"{prefix}.rate.numerator", 400)},
                        "denominator": {"value": N(f"{prefix}.rate.denominator", 1)},
                    },
                }
            ],
            "maxDosePerPeriod": {
                "numerator": {"value": N(f"{prefix}.maxDose.numerator", 800)},
                "denominator": {"value": N(f"{prefix}.maxDose.denominator", 1)},
            },
        }
    ]


def _medication(kind: str, rid: str, coding: dict, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "id": rid,
        "status": status,
        "medicationCodeableConcept": {"coding": [coding], "text": coding["display"]},
        "subject": {"reference": "Patient/p1"},
        **fields,
    }


def _record(second_line: bool) -> list[dict[str, Any]]:
    """A first-line patient (HCC on HBV, every lab, imaging, an endoscopy, varices) or, for the
    second line, the same after sorafenib (request, statement, administration) and progression."""
    hcc, hbv = condition("C22.0", "Liver cell carcinoma"), condition("B18.1", "Chronic viral hepatitis B")
    hcc.update(
        id="hcc",
        onsetDateTime=D("hcc.onsetDateTime", "2026-01-10"),
        abatementDateTime=D("hcc.abatementDateTime", "2027-01-01"),
        recordedDate=D("hcc.recordedDate", "2026-01-12"),
    )
    hbv.update(
        id="hbv",
        onsetPeriod=P(
            "hbv.onsetPeriod", {"start": D("hbv.onsetPeriod.start", "2001"), "end": D("hbv.onsetPeriod.end", "2026-11")}
        ),
        abatementAge={"value": N("hbv.abatementAge", 90), "unit": "a"},
        recordedDate=D("hbv.recordedDate", "2001-05-01"),
    )
    varices = condition("I85.00", "Esophageal varices without bleeding")
    varices.update(
        id="varices",
        onsetAge={"value": N("varices.onsetAge", 62), "unit": "a"},
        recordedDate=D("varices.recordedDate", "2026-09-15"),
        abatementPeriod={"start": D("varices.abatementPeriod.start", "2026-10")},
    )
    egd = {
        "resourceType": "Procedure",
        "id": "egd",
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": "76009000", "display": "Esophagogastroduodenoscopy"}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": D("egd.performedDateTime", "2026-09-15"),
    }
    egd_period = {
        **{k: v for k, v in egd.items() if k != "performedDateTime"},
        "id": "egd-2",
        "performedPeriod": P(
            "egd-2.performedPeriod",
            {
                "start": D("egd-2.performedPeriod.start", "2026-06-01"),
                "end": D("egd-2.performedPeriod.end", "2026-06-02"),
            },
        ),
    }
    alt = _lab("alt", "1742-6", 65, "U/L", "2026-11-12")
    del alt["effectiveDateTime"]
    alt["effectivePeriod"] = P(
        "alt.effectivePeriod",
        {
            "start": D("alt.effectivePeriod.start", "2026-11-12"),
            "end": D("alt.effectivePeriod.end", "2026-11-12T10:00:00Z"),
        },
    )
    ast = _lab("ast", "1920-8", 55, "U/L", "2026-11-12")
    del ast["effectiveDateTime"]
    ast["effectiveInstant"] = D("ast.effectiveInstant", "2026-11-12T08:30:00.000+01:00")
    bilirubin = _lab("bilirubin", "1975-2", 20, "umol/L", "2026-11-12")
    del bilirubin["effectiveDateTime"], bilirubin["issued"]  # dated by the report that lists it
    report = {
        "resourceType": "DiagnosticReport",
        "id": "panel",
        "status": "final",
        "code": {"text": "liver panel"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": D("panel.effectiveDateTime", "2026-11-12"),
        "issued": D("panel.issued", "2026-11-12T18:00:00Z"),
        "result": [{"reference": "Observation/bilirubin"}],
    }
    size = _lab("size", "33728-7", 7.5, "cm", "2026-11-01")
    size["category"] = []
    size["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "33728-7"}]},
            "valueQuantity": {"value": N("size.component", 6.1), "unit": "cm", "system": UCUM, "code": "cm"},
        }
    ]
    count = {
        "resourceType": "Observation",
        "id": "count",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": TUMOUR_COUNT_CODE}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": D("count.effectiveDateTime", "2026-11-01"),
        "valueInteger": N("count.value", 3),
    }
    child_pugh = {
        "resourceType": "Observation",
        "id": "child-pugh",
        "status": "final",
        "code": {"text": "Child-Pugh classification"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": P("child-pugh.effectivePeriod", {"end": D("child-pugh.effectivePeriod.end", "2026-11-12")}),
        "valueString": "Child-Pugh A",
    }
    record = [
        _lab("afp", "1834-1", 1250, "ng/mL", "2026-11-10"),
        alt,
        ast,
        bilirubin,
        report,
        size,
        count,
        child_pugh,
        _lab("albumin", "1751-7", 38, "g/L", "2026-11-12"),
        _lab("platelets", "777-3", 150, "10*9/L", "2026-11-12"),
        _lab("inr", "6301-6", 1.1, "1", "2026-11-12"),
        hcc,
        hbv,
        varices,
        egd,
        egd_period,
        _medication(
            "MedicationStatement",
            "amox-statement",
            {"system": "x", "code": "y", "display": "amoxicillin"},
            "active",
            effectivePeriod={"start": D("amox.effectivePeriod.start", "2026-10-01")},
            dateAsserted=D("amox.dateAsserted", "2026-10-01"),
            dosage=_dosage("amox", "2026-10-01"),
        ),
    ]
    if second_line:
        record += [
            _medication(
                "MedicationRequest",
                "sorafenib-rx",
                SORAFENIB,
                "completed",
                intent="order",
                authoredOn=D("sorafenib-rx.authoredOn", "2026-03-01"),
                dosageInstruction=_dosage("sorafenib-rx", "2026-03-02"),
            ),
            _medication(
                "MedicationStatement",
                "sorafenib-statement",
                SORAFENIB,
                "completed",
                effectivePeriod=P(
                    "sorafenib-statement.effectivePeriod",
                    {
                        "start": D("sorafenib-statement.effectivePeriod.start", "2026-03"),
                        "end": D("sorafenib-statement.effectivePeriod.end", "2026-05-02"),
                    },
                ),
                dateAsserted=D("sorafenib-statement.dateAsserted", "2026-06-01"),
            ),
            _medication(
                "MedicationAdministration",
                "sorafenib-admin",
                SORAFENIB,
                "completed",
                effectiveDateTime=D("sorafenib-admin.effectiveDateTime", "2026-03-01T09:00:00+08:00"),
                dosage={
                    "dose": {"value": N("sorafenib-admin.dose", 400), "unit": "mg"},
                    "rateRatio": {
                        "numerator": {"value": N("sorafenib-admin.rate.numerator", 1)},
                        "denominator": {"value": N("sorafenib-admin.rate.denominator", 0)},
                    },
                },
            ),
            {
                "resourceType": "Observation",
                "id": "progression",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": D("progression.effectiveDateTime", "2026-05-01"),
                "issued": D("progression.issued", "2026-05-02T00:00:00Z"),
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "271299001"}]},
            },
            {
                "resourceType": "DiagnosticReport",
                "id": "ct",
                "status": "final",
                "code": {"text": "CT abdomen"},
                "subject": {"reference": "Patient/p1"},
                "effectivePeriod": P(
                    "ct.effectivePeriod",
                    {
                        "start": D("ct.effectivePeriod.start", "2026-05-01T10:00:00Z"),
                        "end": D("ct.effectivePeriod.end", "2026-05-01T10:30:00Z"),
                    },
                ),
                "issued": D("ct.issued", "2026-05-01T15:00:00Z"),
                "conclusionCode": [{"coding": [{"system": SNOMED, "code": "271299001"}]}],
            },
            {
                "resourceType": "AdverseEvent",
                "id": "hfsr",
                "actuality": "actual",
                "subject": {"reference": "Patient/p1"},
                "event": {"text": "hand-foot skin reaction"},
                "date": D("hfsr.date", "2026-04-01"),
                "detected": D("hfsr.detected", "2026-04-01"),
                "recordedDate": D("hfsr.recordedDate", "2026-04-02"),
                "suspectEntity": [{"instance": {"display": "sorafenib"}}],
            },
        ]
    return record


def _draft(second_line: bool) -> dict[str, Any]:
    drug = LENVATINIB if second_line else SORAFENIB
    return _medication(
        "MedicationRequest",
        "draft-1",
        drug,
        "draft",
        intent="order",
        authoredOn=D("draft.authoredOn", ORDER_DATE),
        dosageInstruction=_dosage("draft", ORDER_DATE),
    )


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "gender": "male",
        "birthDate": D("patient.birthDate", "1960-05-01"),
        "deceasedDateTime": D("patient.deceasedDateTime", "2099-01-01"),
    }


def _slots(value: Any) -> list[Slot]:
    if isinstance(value, Slot):
        return [value, *_slots(value.default)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _slots(v)]
    if isinstance(value, list):
        return [s for v in value for s in _slots(v)]
    return []


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, Slot):
        return _fill(values[value.name] if value.name in values else value.default, values)
    if isinstance(value, dict):
        filled = {k: _fill(v, values) for k, v in value.items()}
        return {k: v for k, v in filled.items() if v is not ABSENT}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


ALL_SLOTS = {s.name: s for s in _slots([_record(True), _draft(False), _patient()])}
SLOTS_OF: dict[str, list[str]] = {}
for _slot in ALL_SLOTS.values():
    SLOTS_OF.setdefault(_slot.kind, []).append(_slot.name)


_UNSET = object()


def hook_body(
    *,
    second_line: bool,
    hook: str,
    values: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    expires_in: Any = _UNSET,
) -> dict[str, Any]:
    """A complete, prefetched order-select/-sign call with `values` in the record's slots."""
    values = values or {}
    record = _fill(_record(second_line), values)
    body = hook_request(hook, [_fill(_draft(second_line), values)], prefetch=full_prefetch(record))
    body["prefetch"]["patient"] = _fill(_patient(), values)
    body["context"].update(context or {})
    if expires_in is not _UNSET:
        # Nothing is fetched (all is prefetched): the server is named only so the token is valid.
        body["fhirServer"] = "http://127.0.0.1:9/fhir"
        body["fhirAuthorization"] = {
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": "user/*.read",
            "subject": "hcc-cds",
        }
    return body


def encode(body: Any) -> bytes:
    """JSON with every Raw number written as is (and lone surrogates kept, as an EHR might send)."""
    raws: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            token = f"__raw_{len(raws)}__"
            raws[token] = str(value)
            return token
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body))
    for token, literal in raws.items():
        text = text.replace(f'"{token}"', literal)
    return text.encode("utf-8", "surrogatepass")


def check_answer(status: int, payload: Any, text: str) -> None:
    """200 with a valid CDS Hooks response, or a 4xx JSON error with a message; never a 5xx."""
    assert status < 500, f"{status}: {text[:2000]}"
    if status == 200:
        check_response(payload)
    else:
        assert 400 <= status < 500, f"{status}: {text[:500]}"
        assert isinstance(payload, dict) and isinstance(payload.get("error"), str), text[:500]
        assert isinstance(payload.get("message"), str) and payload["message"], text[:500]


# -- strategies ---------------------------------------------------------------------------------

# FHIR date strings built from their parts, each at and beyond its limits: year 0 and 9999, month
# 0 and 13, day 0 and 32 (Feb 29 of 2023, 2100), second 60, offsets to ±14:00 and past them.
_years = st.sampled_from([0, 1, 2, 999, 1000, 1970, 2023, 2024, 2026, 2100, 9998, 9999]) | st.integers(0, 9999)
_offsets = st.sampled_from(["Z", "+14:00", "-14:00", "+00:00", "-00:00", "+05:45", "+14:01", "-99:99"])
_times = st.builds(
    "T{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["", ".0", ".999999999", ".5"]),
    _offsets,
)
fhir_dates = st.one_of(
    st.sampled_from(DATE_LIMITS),
    st.builds("{:04d}".format, _years),
    st.builds("{:04d}-{:02d}".format, _years, st.integers(0, 13)),
    st.builds("{:04d}-{:02d}-{:02d}".format, _years, st.integers(0, 13), st.integers(0, 32)),
    st.builds("{:04d}-{:02d}-{:02d}{}".format, _years, st.integers(1, 12), st.integers(1, 31), _times),
    st.dates().map(date.isoformat),
)
numbers = st.one_of(
    st.sampled_from(NUMBER_LIMITS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: Raw(format(d, "f"))),
)
VALUES_OF = {
    "date": fhir_dates,
    "number": numbers,
    "unit": st.sampled_from(UNITS),
    "comparator": st.sampled_from(COMPARATORS),
    "quantity_id": st.sampled_from(["q1", "", 5]),
    "period": st.sampled_from(PERIOD_LIMITS) | st.fixed_dictionaries({"start": fhir_dates, "end": fhir_dates}),
}


def _assignments(kinds: tuple[str, ...], max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    names = [name for kind in kinds for name in SLOTS_OF[kind]]
    one = st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), VALUES_OF[ALL_SLOTS[name].kind]))
    return st.lists(one, max_size=max_size).map(dict)


scenarios = st.tuples(st.booleans(), st.sampled_from([("order-select", SELECT), ("order-sign", SIGN)]))
ids = st.sampled_from(ID_LIMITS) | st.text(max_size=30)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "patientId": ids,
        "userId": ids,
        "encounterId": ids,
        "selections": ids | st.lists(ids | st.just("MedicationRequest/draft-1/_history/9"), max_size=3),
    },
)
expires = st.sampled_from([_UNSET, *EXPIRES_LIMITS]) | st.integers() | st.floats(allow_nan=False)

# Fixed and bounded: the same examples every run (no example database), in a few seconds.
LIMITS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the service --------------------------------------------------------------------------------


class Service:
    """The app behind Flask's test client: the fuzz sends hundreds of calls, a few ms each."""

    def __init__(self, tmp: Path):
        terminology = tmp / "terminology.yaml"
        terminology.write_text(HOSPITAL_TERMINOLOGY)
        self.app = create_app(
            Settings(
                database_url=f"sqlite:///{tmp}/feedback.sqlite3", log_level="WARNING", terminology_path=terminology
            )
        )
        self.client = self.app.test_client()

    def call(self, body: dict[str, Any], service: str) -> None:
        response = self.client.post(f"/cds-services/{service}", data=encode(body), content_type="application/json")
        check_answer(response.status_code, response.get_json(silent=True), response.get_data(as_text=True))
        response.close()  # as a server does once it is sent: the audit row is queued then


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Service:
    return Service(tmp_path_factory.mktemp("limits"))


FIRST_SELECT = (False, ("order-select", SELECT))
SECOND_SIGN = (True, ("order-sign", SIGN))


# -- properties ---------------------------------------------------------------------------------


@LIMITS
@given(scenario=scenarios, values=_assignments(("date", "period"), 6))
@example(scenario=FIRST_SELECT, values={"draft.authoredOn": "0001-01-01"})  # the reported OverflowError
@example(
    scenario=SECOND_SIGN,
    values={
        "draft.authoredOn": "9999-12-31",
        "progression.effectiveDateTime": "0001",
        "sorafenib-rx.authoredOn": "0001-01-01T00:00:00+14:00",
    },
)
@example(
    scenario=FIRST_SELECT, values={"draft.authoredOn": "2023-02-29", "afp.effectiveDateTime": "9999-12-31T23:59:60Z"}
)
def test_dates_and_periods_at_their_limits(service, scenario, values):
    second_line, (hook, service_id) = scenario
    service.call(hook_body(second_line=second_line, hook=hook, values=values), service_id)


@LIMITS
@given(scenario=scenarios, values=_assignments(("number", "unit", "comparator", "quantity_id"), 6))
@example(scenario=FIRST_SELECT, values={"afp.value": Raw("1e309")})  # not JSON (I-JSON): 400
@example(scenario=FIRST_SELECT, values={"bilirubin.value": 5e-324, "albumin.value": 2**64 - 1, "inr.value": -0.0})
@example(scenario=SECOND_SIGN, values={"size.component": 1e308, "size.unit": "m", "size.quantity-id": "q1"})
def test_numbers_at_their_limits(service, scenario, values):
    second_line, (hook, service_id) = scenario
    service.call(hook_body(second_line=second_line, hook=hook, values=values), service_id)


@LIMITS
@given(scenario=scenarios, values=_assignments(tuple(VALUES_OF), 8), context=contexts, expires_in=expires)
@example(scenario=FIRST_SELECT, values={}, context={"patientId": "x" * 5000}, expires_in=2**64 - 1)
@example(scenario=FIRST_SELECT, values={}, context={"selections": [0]}, expires_in=Raw("1e309"))
def test_everything_at_once_with_context_and_authorization(service, scenario, values, context, expires_in):
    second_line, (hook, service_id) = scenario
    body = hook_body(second_line=second_line, hook=hook, values=values, context=context, expires_in=expires_in)
    service.call(body, service_id)


LISTED = {
    "date": DATE_LIMITS,
    "period": PERIOD_LIMITS,
    "number": NUMBER_LIMITS,
    "unit": UNITS,
    "comparator": COMPARATORS,
}


@pytest.mark.parametrize("kind", list(LISTED))
@pytest.mark.parametrize("second_line", [False, True], ids=["first-line", "second-line"])
def test_every_listed_limit_in_every_field_of_its_kind(service, kind, second_line):
    """Each listed value in all the fields of its kind at once (every date 0001-01-01, every number
    -0.0, ...), for both scenarios; the fuzz above mixes them field by field."""
    for value in LISTED[kind]:
        values = dict.fromkeys(SLOTS_OF[kind], value)
        service.call(hook_body(second_line=second_line, hook="order-select", values=values), SELECT)


# -- the same limits in what the FHIR server answers (prefetch fallback) -------------------------


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirStub]:
    with FhirStub() as stub:
        yield stub


def served(second_line: bool, values: dict[str, Any]) -> dict[str, dict]:
    """What the FHIR server answers: a searchset per resource type, and the Patient read. The stub
    writes JSON with Python's json module: a Raw number arrives as a string there."""
    by_type: dict[str, list[dict]] = {}
    for resource in _fill(_record(second_line), values):
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return {
        **{kind: searchset(resources) for kind, resources in by_type.items()},
        "Patient/p1": _fill(_patient(), values),
    }


@settings(LIMITS, max_examples=30)
@given(scenario=scenarios, values=_assignments(tuple(VALUES_OF), 8))
@example(scenario=SECOND_SIGN, values={"draft.authoredOn": "0001-01-01", "progression.effectiveDateTime": "9999-12-31"})
def test_limits_in_what_the_fhir_server_answers(service, fhir_server, scenario, values):
    second_line, (hook, service_id) = scenario
    fhir_server.resources = served(second_line, values)
    body = hook_request(hook, [_fill(_draft(second_line), values)], fhir_server=fhir_server.url, token="t")
    service.call(body, service_id)


# -- over HTTP, to the service as deployed (gunicorn) --------------------------------------------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[Any]:
    with gunicorn_service(tmp_path_factory.mktemp("deployed"), CDS_LOG_LEVEL="WARNING") as running:
        yield running


def post(server: Any, body: dict[str, Any], service_id: str) -> None:
    response = requests.post(
        f"{server.url}/cds-services/{service_id}",
        data=encode(body),
        headers={"Content-Type": "application/json"},
        timeout=15,
    )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    check_answer(response.status_code, payload, response.text)


DEPLOYED_EXAMPLES = {
    "order dated 0001-01-01": (FIRST_SELECT, {"draft.authoredOn": "0001-01-01"}, {}),
    "order 9999-12-31, history at year 1": (
        SECOND_SIGN,
        {
            "draft.authoredOn": "9999-12-31",
            "sorafenib-rx.authoredOn": "0001-01-01T00:00:00+14:00",
            "progression.effectiveDateTime": "0001",
            "hfsr.date": "9999-12-31T23:59:60-14:00",
        },
        {},
    ),
    "Feb 29 of 2023 and 2100, a leap second": (
        FIRST_SELECT,
        {
            "draft.authoredOn": "2100-02-29",
            "afp.effectiveDateTime": "2023-02-29",
            "alt.effectivePeriod": {"start": "2026-11-12T23:59:60+14:00"},
        },
        {},
    ),
    "1e309 (not I-JSON)": (FIRST_SELECT, {"afp.value": Raw("1e309")}, {}),
    "5e-324, 2**64-1, -0": (
        SECOND_SIGN,
        {"bilirubin.value": 5e-324, "albumin.value": 2**64 - 1, "inr.value": Raw("-0"), "size.component": 1e308},
        {},
    ),
    "expires_in 2**64-1, 5000-character patientId": (
        FIRST_SELECT,
        {},
        {"expires_in": 2**64 - 1, "context": {"patientId": "x" * 5000}},
    ),
}


@pytest.mark.parametrize("name", list(DEPLOYED_EXAMPLES))
def test_limit_examples_over_http_as_deployed(deployed, name):
    (second_line, (hook, service_id)), values, call = DEPLOYED_EXAMPLES[name]
    post(deployed, hook_body(second_line=second_line, hook=hook, values=values, **call), service_id)


# Found by this fuzz in cds_service/fhir_client.py: a searchset whose `entry` or `link` is not an
# array, or whose next link is not a URL, raised TypeError/ValueError in the fetch thread and the
# hook call was answered 500. Now each costs its prefetch key only.
@pytest.mark.parametrize(
    "answer",
    [
        {"resourceType": "Bundle", "type": "searchset", "entry": 1},
        {"resourceType": "Bundle", "type": "searchset", "entry": [], "link": 5},
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": "http://[::1"}],
        },
    ],
    ids=["entry-a-number", "link-a-number", "next-link-not-a-url"],
)
def test_a_malformed_searchset_from_the_fhir_server_is_no_500(deployed, answer):
    with FhirStub(resources={"Condition": answer}) as stub:
        post(
            deployed, hook_request("order-select", [_fill(_draft(False), {})], fhir_server=stub.url, token="t"), SELECT
        )
