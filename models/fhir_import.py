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

The outcome rules (last contact, death, second line) are models.outcomes', shared with
post-deployment monitoring. Patients for whom any of this cannot be decided are left out, with the reason counted and
reported; `TrainingDataError` if nobody is left.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from models import outcomes
from models.training import TrainingDataError

if TYPE_CHECKING:
    from fhir_mappers.terminology import Terminology
    from models._progress import Progress

# One FHIR resource as JSON, as the Bulk Data export holds it.
Resource = dict[str, Any]


def read_ndjson(path: str | Path) -> list[Resource]:
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


def _patient_key(resource: Resource) -> str | None:
    if resource.get("resourceType") == "Patient":
        patient_id = resource.get("id")
        return patient_id if isinstance(patient_id, str) else None
    for element in ("subject", "patient", "beneficiary"):
        ref = resource.get(element)
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.split("/", 1)[1]
    return None


def group_by_patient(resources: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Resources per patient id; Medication resources (referenced, not patient-owned) go to all."""
    grouped: dict[str, list[Resource]] = {}
    shared: list[Resource] = []
    for resource in resources:
        key = _patient_key(resource)
        if key is None:
            if resource.get("resourceType") == "Medication":
                shared.append(resource)
            continue
        grouped.setdefault(key, []).append(resource)
    return {key: items + shared for key, items in grouped.items()}


def patient_row(
    patient_id: str, resources: list[Resource], terminology: Terminology
) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) or (None, reason the patient is left out)."""
    from fhir_mappers.patient import PatientRecord, map_patient_features, map_treatment_history

    record = PatientRecord(resources, terminology)  # indexed once for the history and the features
    history = map_treatment_history(record, terminology=terminology)
    resistance = history.resistance_type.value
    start = history.sorafenib_start.value
    if resistance is None or start is None:
        missing = history.resistance_type.missing or history.sorafenib_start.missing
        return None, f"resistance type unknown ({getattr(missing, 'value', missing)})"
    features = map_patient_features(record, as_of=start, terminology=terminology)
    row: dict[str, Any] = {"patient_id": patient_id, "resistance": resistance}
    for name in ("afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours"):
        feature = getattr(features, name)
        if feature.value is None:
            return None, f"{name} unknown at sorafenib start ({getattr(feature.missing, 'value', feature.missing)})"
        row[name] = int(feature.value)

    death = outcomes.death_date(resources)
    contact = outcomes.last_contact(resources, start)
    end = death if death is not None else contact
    if end < start:
        return None, "death recorded before the sorafenib start"
    row["os_months"] = outcomes.months_between(start, end)
    row["os_event"] = int(death is not None)
    second = outcomes.second_line(history, death, contact)
    row.update(
        {
            "second_line_regimen": second.regimen if second else "",
            "sl_pfs_months": second.pfs_months if second else None,
            "sl_pfs_event": int(second.pfs_event) if second else None,
            "sl_os_months": second.os_months if second else None,
            "sl_os_event": int(second.os_event) if second else None,
        }
    )
    return row, None


def cohort_from_bulk_export(
    path: str | Path, terminology_path: str | Path | None = None, progress: Progress | None = None
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
    rows: list[dict[str, Any]] = []
    reasons: Counter[str | None] = Counter()
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
