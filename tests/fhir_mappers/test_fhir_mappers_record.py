"""The indexed patient record: the mappers give, on every clinical vignette, exactly the features
and history they gave before the record was indexed once per call, whether they get the raw
resources or one shared PatientRecord.

fixtures/vignette_mapping_golden.json holds the outputs of the mappers before the index (the
vignette bundles without their draft orders, order date 2026-11-20)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from fhir_mappers.errors import MappingError
from fhir_mappers.patient import PatientRecord, map_patient_features, map_treatment_history
from fhir_mappers.terminology import load_terminology

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = Path(__file__).parents[1] / "vignettes" / "bundles"
GOLDEN = json.loads((FIXTURES / "vignette_mapping_golden.json").read_text(encoding="utf-8"))
AS_OF = date(2026, 11, 20)


def _record(name: str) -> list[dict]:
    resources = [entry["resource"] for entry in json.loads((BUNDLES / name).read_text(encoding="utf-8"))["entry"]]
    return [r for r in resources if not (r["resourceType"] == "MedicationRequest" and r.get("status") == "draft")]


def test_every_vignette_is_pinned():
    assert sorted(GOLDEN) == sorted(path.name for path in BUNDLES.glob("*.json"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize("shared", [False, True], ids=["resources", "shared-record"])
def test_vignette_features_unchanged(name, shared, terminology):
    resources = _record(name)
    given = PatientRecord(resources, terminology) if shared else resources
    features = map_patient_features(given, as_of=AS_OF, terminology=terminology)
    history = map_treatment_history(given, terminology=terminology, as_of=AS_OF)
    assert features.model_dump(mode="json") == GOLDEN[name]["features"]
    assert history.model_dump(mode="json") == GOLDEN[name]["history"]


def test_record_classifies_and_dates_once(terminology):
    obs = {
        "resourceType": "Observation",
        "id": "afp-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1834-1"}]},
        "valueQuantity": {"value": 12, "unit": "ng/mL"},
    }
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "effectiveDateTime": "2026-11-02",
        "result": [{"reference": "Observation/afp-1"}],
    }
    bundle = {"resourceType": "Bundle", "entry": [{"resource": obs}, {"resource": report}, {"resource": dict(obs)}]}
    record = PatientRecord([bundle], terminology)
    assert record.of_type("Observation") == [obs]  # the duplicate (same type/id) is dropped
    assert [c.key for c in record.observations.matching("labs")] == ["afp"]
    when, source = record.observation_date(obs)
    assert (when.text, source) == ("2026-11-02", "DiagnosticReport/r1.effectiveDateTime")
    features = map_patient_features(record, as_of=AS_OF, terminology=terminology)
    assert features.afp.value.value == 12 and features.afp.provenance.effective == "2026-11-02"


def test_record_of_another_terminology_is_refused(terminology):
    other = load_terminology(FIXTURES / "terminology_local.yaml")
    with pytest.raises(MappingError, match="another terminology"):
        map_patient_features(PatientRecord([], other), as_of=AS_OF, terminology=terminology)
