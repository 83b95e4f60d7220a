"""A typical call (~30 resources) must stay well under 20 ms."""

from __future__ import annotations

import time
from datetime import date

from fhir_mappers.patient import map_patient_features, map_treatment_history


def test_thirty_resources_map_quickly(fixture, terminology):
    values = [fixture("labs_searchset.json"), fixture("imaging_conditions.json"), fixture("history_primary.json"), fixture("history_secondary.json")]
    n_resources = sum(len(v["entry"]) for v in values)
    assert 30 <= n_resources <= 40
    map_patient_features(values, as_of=date(2025, 3, 10), terminology=terminology)  # warm-up
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        map_patient_features(values, as_of=date(2025, 3, 10), terminology=terminology)
        map_treatment_history(values, terminology=terminology, as_of=date(2025, 3, 10))
    per_call_ms = (time.perf_counter() - start) / runs * 1000
    print(f"map_patient_features + map_treatment_history, {n_resources} resources: {per_call_ms:.2f} ms")
    assert per_call_ms < 20
