"""FHIR resources -> PatientFeatures (labs, imaging, conditions) and TreatmentHistory.

The public entry point. Each call indexes the record once (fhir_mappers.record) and every feature
family reads that index: labs (labs.py), imaging and tumour burden (imaging.py), conditions and
staging (conditions.py), treatment history and resistance (history.py). Bad resources never
raise: they become candidates with a reason, and a feature without a usable candidate is missing
with the reason of the most relevant one (see _common.select_recent).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from fhir_mappers.conditions import condition_features
from fhir_mappers.features import PatientFeatures
from fhir_mappers.history import map_treatment_history, primary_window_days
from fhir_mappers.imaging import tumour_features
from fhir_mappers.labs import lab_features
from fhir_mappers.record import PatientRecord, patient_record
from fhir_mappers.terminology import Terminology


def map_patient_features(
    resources: Iterable[dict[str, Any]] | Any,
    *,
    as_of: date,
    terminology: Terminology,
    lab_lookback_days: int = 30,
    imaging_lookback_days: int = 90,
) -> PatientFeatures:
    """Map FHIR resources (or Bundles / prefetch values, or a PatientRecord shared with
    map_treatment_history) to the model features at `as_of`."""
    record = patient_record(resources, terminology)
    return PatientFeatures(
        as_of=as_of,
        **lab_features(record, as_of, lab_lookback_days),
        **tumour_features(record, as_of, imaging_lookback_days),
        **condition_features(record, as_of, lab_lookback_days, imaging_lookback_days),
        operation_outcomes=record.operation_outcomes,
    )


__all__ = ["PatientRecord", "map_patient_features", "map_treatment_history", "primary_window_days"]
