"""Training data from a FHIR Bulk Data export (NDJSON) through the fhir_mappers package.

One row per patient in the cohort column format (README "Cohort columns"), built as:

- resistance type and sorafenib start: `fhir_mappers.patient.map_treatment_history`;
- AFP > 400, ALT > 40, tumour size > 5 cm, multiple tumours at the sorafenib start:
  `map_patient_features(resources, as_of=sorafenib start)` (its own look-back windows);
- OS from sorafenib start: death = Patient.deceasedDateTime; otherwise censored at the
  patient's last dated resource (last contact);
- second line: the first TKI or PD-1 inhibitor started on/after the first progression after
  sorafenib. It is TKI + PD-1 ("tki_pd1") when a PD-1 inhibitor starts within
  SECOND_LINE_COMBINATION_DAYS of that start (every combination arm of the study paired the
  PD-1 inhibitor with a TKI, sorafenib included), else TKI alone;
- second-line PFS: next progression after the second-line start, or death; second-line OS:
  death; both censored at last contact.

Patients for whom any of this cannot be decided are left out, with the reason counted and
reported; `TrainingDataError` if nobody is left.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd

from models.training import TrainingDataError

SECOND_LINE_COMBINATION_DAYS = 30
DAYS_PER_MONTH = 365.25 / 12
DATE_ELEMENTS = (
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "abatementDateTime",
    "performedDateTime",
    "issued",
    "effectiveDateTime",
    "occurrenceDateTime",
    "date",
)
PERIOD_ELEMENTS = ("effectivePeriod", "performedPeriod", "period", "dispenseRequest")


def read_ndjson(path: str | Path) -> list[dict]:
    """All resources of an export: a directory of *.ndjson files, or one file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.ndjson"))
        if not files:
            raise TrainingDataError(f"no *.ndjson files in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise TrainingDataError(f"cannot read training data {path}: no such file or directory")
    resources = []
    for file in files:
        with file.open("rb") as handle:  # NDJSON is UTF-8 (FHIR Bulk Data); decoded line by line
            for line_no, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    resource = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise TrainingDataError(
                        f"line {line_no} of {file.name}: byte 0x{raw[exc.start]:02x} is not UTF-8 text"
                    ) from exc
                except json.JSONDecodeError as exc:
                    raise TrainingDataError(f"line {line_no} of {file.name}: not valid JSON ({exc.msg})") from exc
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    raise TrainingDataError(f"line {line_no} of {file.name}: not a FHIR resource (no resourceType)")
                resources.append(resource)
    return resources


def _patient_key(resource: dict) -> str | None:
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    for element in ("subject", "patient", "beneficiary"):
        ref = resource.get(element)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("Patient/"):
            return ref["reference"].split("/", 1)[1]
    return None


def group_by_patient(resources: Iterable[dict]) -> dict[str, list[dict]]:
    """Resources per patient id; Medication resources (referenced, not patient-owned) go to all."""
    grouped: dict[str, list[dict]] = {}
    shared: list[dict] = []
    for resource in resources:
        key = _patient_key(resource)
        if key is None:
            if resource.get("resourceType") == "Medication":
                shared.append(resource)
            continue
        grouped.setdefault(key, []).append(resource)
    return {key: items + shared for key, items in grouped.items()}


def _resource_dates(resource: dict) -> list[date]:
    from fhir_mappers.fhirdates import parse_fhir_date

    found = []
    for element in DATE_ELEMENTS:
        parsed = parse_fhir_date(resource.get(element))
        if parsed is not None:
            found.append(parsed.earliest)
    for element in PERIOD_ELEMENTS:
        period = resource.get(element)
        if element == "dispenseRequest" and isinstance(period, dict):
            period = period.get("validityPeriod")
        if isinstance(period, dict):
            for bound in ("start", "end"):
                parsed = parse_fhir_date(period.get(bound))
                if parsed is not None:
                    found.append(parsed.earliest)
    return found


def _months(start: date, end: date) -> float:
    return round((end - start).days / DAYS_PER_MONTH, 2)


def patient_row(patient_id: str, resources: list[dict], terminology) -> tuple[dict | None, str | None]:
    """(row, None) or (None, reason the patient is left out)."""
    from fhir_mappers.fhirdates import parse_fhir_date
    from fhir_mappers.patient import map_patient_features, map_treatment_history

    history = map_treatment_history(resources, terminology=terminology)
    resistance = history.resistance_type.value
    start = history.sorafenib_start.value
    if resistance is None or start is None:
        missing = history.resistance_type.missing or history.sorafenib_start.missing
        return None, f"resistance type unknown ({getattr(missing, 'value', missing)})"
    features = map_patient_features(resources, as_of=start, terminology=terminology)
    row: dict = {"patient_id": patient_id, "resistance": resistance}
    for name in ("afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours"):
        feature = getattr(features, name)
        if feature.value is None:
            return None, f"{name} unknown at sorafenib start ({getattr(feature.missing, 'value', feature.missing)})"
        row[name] = int(feature.value)

    patient = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    death = parse_fhir_date(patient.get("deceasedDateTime"))
    death_date = death.earliest if death is not None else None
    dates = [d for r in resources for d in _resource_dates(r)]
    last_contact = max([d for d in dates if d >= start] + [start])
    end = death_date if death_date is not None else last_contact
    if end < start:
        return None, "death recorded before the sorafenib start"
    row["os_months"] = _months(start, end)
    row["os_event"] = int(death_date is not None)

    first_progression = history.first_progression_after_sorafenib.value
    row.update(
        {
            "second_line_regimen": "",
            "sl_pfs_months": None,
            "sl_pfs_event": None,
            "sl_os_months": None,
            "sl_os_event": None,
        }
    )
    if first_progression is None:
        return row, None
    tki = [
        e.start
        for e in history.other_tki_exposures + history.sorafenib_exposures
        if e.start is not None and e.start >= first_progression
    ]
    pd1 = [e.start for e in history.pd1_exposures if e.start is not None and e.start >= first_progression]
    candidates = sorted(tki + pd1)
    if not candidates:
        return row, None
    sl_start = candidates[0]
    window = [d for d in pd1 if 0 <= (d - sl_start).days <= SECOND_LINE_COMBINATION_DAYS]
    row["second_line_regimen"] = "tki_pd1" if window else "tki"
    later = [p.date for p in history.progressions if p.date > sl_start]
    sl_end = death_date if death_date is not None else last_contact
    progression = min(later) if later else None
    if progression is not None and (death_date is None or progression <= death_date):
        row["sl_pfs_months"], row["sl_pfs_event"] = _months(sl_start, progression), 1
    else:
        row["sl_pfs_months"], row["sl_pfs_event"] = _months(sl_start, sl_end), int(death_date is not None)
    row["sl_os_months"], row["sl_os_event"] = _months(sl_start, sl_end), int(death_date is not None)
    return row, None


def cohort_from_bulk_export(
    path: str | Path, terminology_path: str | Path | None = None, progress=None
) -> pd.DataFrame:
    """The training table for an export; reasons for left-out patients go to stderr."""
    from fhir_mappers.errors import MappingError
    from fhir_mappers.terminology import load_terminology

    try:
        terminology = load_terminology(terminology_path)
    except MappingError as exc:
        raise TrainingDataError(f"terminology: {exc}") from exc
    by_patient = group_by_patient(read_ndjson(path))
    patients = [pid for pid in sorted(by_patient) if any(r.get("resourceType") == "Patient" for r in by_patient[pid])]
    if not patients:
        raise TrainingDataError(f"{path}: no Patient resources in the export")
    rows, reasons = [], Counter()
    iterator = progress(patients, "mapping patients") if progress else patients
    for pid in iterator:
        row, reason = patient_row(pid, by_patient[pid], terminology)
        if row is None:
            reasons[reason] += 1
        else:
            rows.append(row)
    if reasons:
        sys.stderr.write(f"{sum(reasons.values())} of {len(patients)} patients left out:\n")
        for reason, count in reasons.most_common():
            sys.stderr.write(f"  {count:5d}  {reason}\n")
    if not rows:
        raise TrainingDataError(f"{path}: no patient could be mapped (see the reasons above)")
    return pd.DataFrame(rows)
