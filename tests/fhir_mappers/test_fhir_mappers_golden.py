"""Whole mapping outputs pinned: values, provenance, notes and missing reasons, field for field.

mapping_golden.json holds mixed resource sets (labs, imaging, findings, staging by code and by
text, conditions, surgery, progression, medications, with mutated statuses, dates and ids) and
the outputs the mappers gave before the per-call code index and lazy candidates; any change to
how resources are matched or selected shows up here. terminology_local.yaml maps codes in every
section, some to two sections or keys, so every extractor has something to find. Changed on
purpose once since (issue 28): case 0's Observation with code.text "AFP" now counts as an AFP
record, matched by name.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.terminology import load_terminology

FIXTURES = Path(__file__).parent / "fixtures"
CASES = json.loads((FIXTURES / "mapping_golden.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def local_terminology():
    return load_terminology(FIXTURES / "terminology_local.yaml")


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_outputs_unchanged(case, local_terminology):
    as_of = date.fromisoformat(case["as_of"])
    features = map_patient_features(
        copy.deepcopy(case["resources"]),
        as_of=as_of,
        terminology=local_terminology,
        imaging_lookback_days=case["imaging_lookback_days"],
    )
    assert features.model_dump(mode="json") == case["features"]
    history = map_treatment_history(copy.deepcopy(case["resources"]), as_of=as_of, terminology=local_terminology)
    assert history.model_dump(mode="json") == case["history"]
