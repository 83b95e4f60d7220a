"""Write a cohort table as a synthetic FHIR Bulk Data export (NDJSON) or as one patient's resources:
the import tests (tests/models) and the monitoring tests (tests/monitor) seed FHIR with it."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOCAL = "http://hospital.example/fhir/codes"
DAYS_PER_MONTH = 365.25 / 12
DRUGS = {
    "sorafenib": {"system": RXNORM, "code": "495881", "display": "sorafenib"},
    "lenvatinib": {"system": RXNORM, "code": "1603296", "display": "lenvatinib"},
    "pembrolizumab": {"system": RXNORM, "code": "1547545", "display": "pembrolizumab"},
}
TERMINOLOGY = f"""version: 1
extends: default
imaging:
  tumour_count:
    - {{system: "{LOCAL}", code: "tumour-count", display: "Number of tumours"}}
"""


def _obs(pid: str, rid: str, code: dict, when: date, **value) -> dict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [code]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when.isoformat(),
        **value,
    }


def _quantity(value: float, unit: str) -> dict:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def _medication(pid: str, rid: str, drug: str, when: date) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "completed",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [DRUGS[drug]], "text": drug},
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": when.isoformat(),
    }


def _progression(pid: str, rid: str, when: date) -> dict:
    return _obs(
        pid,
        rid,
        {"system": LOINC, "code": "97509-4", "display": "Cancer disease progression"},
        when,
        valueCodeableConcept={
            "coding": [{"system": SNOMED, "code": "271299001", "display": "Patient's condition worsened (finding)"}]
        },
    )


def _days(months: float) -> int:
    return int(math.floor(months * DAYS_PER_MONTH))


def patient_resources(row: pd.Series, start: date) -> list[dict]:
    pid = str(row.patient_id)
    os_days = _days(row.os_months)
    patient = {"resourceType": "Patient", "id": pid}
    if row.os_event == 1:
        patient["deceasedDateTime"] = (start + timedelta(days=os_days)).isoformat()
    out = [patient, _medication(pid, f"{pid}-sor", "sorafenib", start)]
    baseline = start - timedelta(days=7)
    out.append(
        _obs(
            pid,
            f"{pid}-afp",
            {"system": LOINC, "code": "1834-1"},
            baseline,
            **_quantity(1200.0 if row.afp_over_400 else 25.0, "ng/mL"),
        )
    )
    out.append(
        _obs(
            pid,
            f"{pid}-alt",
            {"system": LOINC, "code": "1742-6"},
            baseline,
            **_quantity(85.0 if row.alt_over_40 else 28.0, "U/L"),
        )
    )
    out.append(
        _obs(
            pid,
            f"{pid}-size",
            {"system": LOINC, "code": "21889-1"},
            baseline,
            **_quantity(7.5 if row.tumour_size_over_5cm else 3.2, "cm"),
        )
    )
    out.append(
        _obs(
            pid,
            f"{pid}-count",
            {"system": LOCAL, "code": "tumour-count"},
            baseline,
            valueInteger=3 if row.multiple_tumours else 1,
        )
    )
    has_sl = isinstance(row.second_line_regimen, str) and row.second_line_regimen != ""
    if has_sl:
        progression_day = _days(row.os_months - row.sl_os_months)
    elif row.resistance == "primary":
        progression_day = max(1, min(60, os_days // 2))
    else:
        progression_day = 92 + max(0, (os_days - 92) // 2)
    progression = start + timedelta(days=progression_day)
    out.append(_progression(pid, f"{pid}-prog1", progression))
    if has_sl:
        out.append(_medication(pid, f"{pid}-tki", "lenvatinib", progression))
        if row.second_line_regimen == "tki_pd1":
            out.append(_medication(pid, f"{pid}-pd1", "pembrolizumab", progression))
        if row.sl_pfs_event == 1 and (row.sl_pfs_months < row.sl_os_months or row.sl_os_event == 0):
            out.append(_progression(pid, f"{pid}-prog2", progression + timedelta(days=_days(row.sl_pfs_months))))
    if row.os_event == 0:  # last contact: a routine lab on the last day of follow-up
        out.append(
            _obs(
                pid,
                f"{pid}-last",
                {"system": LOINC, "code": "1742-6"},
                start + timedelta(days=os_days),
                **_quantity(30.0, "U/L"),
            )
        )
    return out


def write_bulk_export(frame: pd.DataFrame, directory: Path) -> Path:
    """Patient.ndjson, Observation.ndjson, MedicationRequest.ndjson plus terminology.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict]] = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        start = date(2019, 1, 1) + timedelta(days=(i * 7) % 1460)
        for resource in patient_resources(row, start):
            by_type.setdefault(resource["resourceType"], []).append(resource)
    for kind, resources in by_type.items():
        (directory / f"{kind}.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    (directory.parent / "terminology.yaml").write_text(TERMINOLOGY)
    return directory
