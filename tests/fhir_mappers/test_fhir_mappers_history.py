"""Treatment history: sorafenib start, other drugs, progression, resistance type."""

from __future__ import annotations

from datetime import date

from fhir_mappers.features import MissingReason
from fhir_mappers.patient import map_treatment_history, primary_window_days


def test_the_three_month_window_is_91_days():
    assert primary_window_days() == 91


def test_progression_two_months_after_start_is_primary(fixture, terminology):
    h = map_treatment_history([fixture("history_primary.json")], terminology=terminology)
    # Earliest of authoredOn (01-12) and the dosage timing start (01-10).
    assert h.sorafenib_start.value == date(2024, 1, 10)
    assert h.sorafenib_start.provenance.resource_id == "sora-1"
    assert h.sorafenib_start.provenance.coding.code == "597747"
    assert h.first_progression_after_sorafenib.value == date(2024, 3, 11)
    assert h.first_progression_after_sorafenib.provenance.resource_id == "status-1"
    assert h.resistance_type.value == "primary"
    assert h.resistance_type.provenance.resource_id == "status-1"
    assert "2024-01-10" in h.resistance_type.note and "2024-03-11" in h.resistance_type.note
    assert h.months_to_progression.value == 2.0  # 61 days
    assert [e.drug for e in h.other_tki_exposures] == ["lenvatinib"]
    assert h.other_tki_exposures[0].start == date(2024, 3, 20)
    # Sintilimab has no ATC/RxNorm code: matched by name in the local coding's display.
    assert [e.drug for e in h.pd1_exposures] == ["sintilimab"]
    assert h.pd1_exposures[0].provenance.coding.code == "XD-0042"
    assert h.model_dump(mode="json")["resistance_type"]["value"] == "primary"


def test_progression_five_months_after_start_is_secondary(fixture, terminology):
    h = map_treatment_history([fixture("history_secondary.json")], terminology=terminology)
    # Contained Medication (Nexavar SBD) on a MedicationStatement.
    assert h.sorafenib_start.value == date(2024, 1, 10)
    assert h.sorafenib_start.provenance.resource_type == "MedicationStatement"
    # The 2023 progression came before sorafenib and does not count.
    assert h.first_progression_after_sorafenib.value == date(2024, 6, 12)
    assert h.first_progression_after_sorafenib.provenance.resource_type == "DiagnosticReport"
    assert h.resistance_type.value == "secondary"
    assert h.months_to_progression.value == 5.1  # 154 days
    assert len(h.progressions) == 2
    assert [e.drug for e in h.pd1_exposures] == ["pembrolizumab"]


def test_year_only_sorafenib_start_is_ambiguous(terminology):
    resources = [
        {
            "resourceType": "MedicationStatement",
            "id": "s",
            "status": "completed",
            "medicationCodeableConcept": {"text": "Sorafenib (Nexavar) 400mg bid"},
            "effectiveDateTime": "2024",
        },
        {
            "resourceType": "Observation",
            "id": "p",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "97509-4"}]},
            "effectiveDateTime": "2024-09-01",
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "271299001"}]},
        },
    ]
    h = map_treatment_history(resources, terminology=terminology)
    assert h.sorafenib_start.missing is MissingReason.ambiguous
    assert h.sorafenib_start.provenance.resource_id == "s"
    assert h.resistance_type.missing is MissingReason.ambiguous
    assert "2024" in h.resistance_type.note and "2024-09-01" in h.resistance_type.note


def test_month_precision_can_still_decide(terminology):
    resources = [
        {
            "resourceType": "MedicationStatement",
            "id": "s",
            "status": "active",
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "495881"}]
            },
            "effectiveDateTime": "2024-01",
        },
        {
            "resourceType": "DiagnosticReport",
            "id": "ct",
            "status": "final",
            "code": {"text": "CT"},
            "effectiveDateTime": "2024-12-01",
            "conclusionCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "271299001"}]}],
        },
    ]
    h = map_treatment_history(resources, terminology=terminology)
    assert h.sorafenib_start.missing is MissingReason.ambiguous
    assert h.resistance_type.value == "secondary"  # > 300 days whichever January day it was
    assert h.months_to_progression.missing is MissingReason.ambiguous


def test_no_sorafenib_and_no_progression(terminology, fixture):
    h = map_treatment_history([], terminology=terminology)
    assert h.sorafenib_start.missing is MissingReason.no_sorafenib
    assert h.resistance_type.missing is MissingReason.no_sorafenib
    bundle = fixture("history_primary.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "status-1"]
    h = map_treatment_history([bundle], terminology=terminology)
    assert h.resistance_type.missing is MissingReason.no_progression
    assert h.sorafenib_start.value == date(2024, 1, 10)


def test_progression_only_before_sorafenib_is_ambiguous(fixture, terminology):
    bundle = fixture("history_secondary.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "ct-june"]
    h = map_treatment_history([bundle], terminology=terminology)
    assert h.resistance_type.missing is MissingReason.ambiguous
    assert h.resistance_type.provenance.resource_id == "status-before"


def test_as_of_hides_later_events_and_unusable_statuses(fixture, terminology):
    h = map_treatment_history([fixture("history_primary.json")], terminology=terminology, as_of=date(2024, 3, 1))
    assert h.resistance_type.missing is MissingReason.no_progression
    assert h.other_tki_exposures == []  # lenvatinib was ordered after as_of
    bundle = fixture("history_primary.json")
    bundle["entry"][0]["resource"]["status"] = "entered-in-error"
    h = map_treatment_history([bundle], terminology=terminology)
    assert h.sorafenib_start.missing is MissingReason.no_sorafenib
    assert "entered-in-error" in h.sorafenib_start.note


def test_preliminary_progression_does_not_count(fixture, terminology):
    bundle = fixture("history_primary.json")
    bundle["entry"][1]["resource"]["status"] = "preliminary"
    assert (
        map_treatment_history([bundle], terminology=terminology).resistance_type.missing is MissingReason.no_progression
    )
