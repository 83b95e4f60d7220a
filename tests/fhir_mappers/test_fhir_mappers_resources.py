"""iter_resources: Bundles, prefetch dicts, OperationOutcomes, junk."""

from __future__ import annotations

import pytest

from fhir_mappers.errors import MappingError
from fhir_mappers.resources import OperationOutcomes, iter_resources


def test_flattens_bundles_and_records_operation_outcomes():
    outcomes = OperationOutcomes()
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "p1"},
        "labs": {
            "resourceType": "Bundle",
            "entry": [
                {"resource": {"resourceType": "Observation", "id": "o1"}},
                {
                    "resource": {
                        "resourceType": "Bundle",
                        "entry": [{"resource": {"resourceType": "Condition", "id": "c1"}}],
                    }
                },
                {
                    "resource": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "processing", "details": {"text": "timeout"}}],
                    }
                },
                {
                    "response": {
                        "status": "404",
                        "outcome": {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "not-found"}],
                        },
                    }
                },
                "junk",
            ],
        },
        "meds": None,
        "failed": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "fatal", "diagnostics": "Prefetch query failed"}],
        },
    }
    resources = list(iter_resources(prefetch, outcomes))
    assert [(r["resourceType"], r["id"]) for r in resources] == [
        ("Patient", "p1"),
        ("Observation", "o1"),
        ("Condition", "c1"),
    ]
    assert outcomes.messages() == ["error: timeout", "error: not-found", "fatal: Prefetch query failed"]
    assert outcomes.skipped == 1


def test_list_of_values_and_junk():
    values = [None, 3, {"no": "type"}, {"resourceType": "Observation", "id": "x"}]
    assert [r["id"] for r in iter_resources(values)] == ["x"]


def test_non_iterable_input_is_a_mapping_error():
    with pytest.raises(MappingError):
        list(iter_resources(42))  # type: ignore[arg-type]
    with pytest.raises(MappingError):
        list(iter_resources("Observation"))  # type: ignore[arg-type]
