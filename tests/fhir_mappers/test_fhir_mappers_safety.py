"""What the safety screening reads from FHIR: coded findings (with ICD-10 subcodes), sorafenib
failure and toxicity stops, checkpoint exposures, non-viral aetiology, implausible values."""

from __future__ import annotations

from datetime import date

import pytest
from fhir_factory import (
    ICD10,
    PEMBROLIZUMAB,
    SORAFENIB,
    afp,
    alt,
    condition,
    endoscopy,
    lab,
    medication_request,
    progression,
)

from fhir_mappers.errors import TerminologyError
from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.terminology import load_terminology

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
AS_OF = date(2026, 11, 20)


def features(resources, terminology):
    return map_patient_features(resources, as_of=AS_OF, terminology=terminology)


def history(resources, terminology):
    return map_treatment_history(resources, as_of=AS_OF, terminology=terminology)


def test_icd10_subcodes_match_a_category_declared_with_descendants(terminology):
    found = features([condition("M32.14", "Glomerular disease in SLE", system=ICD10CM)], terminology)
    assert [f.key for f in found.findings] == ["autoimmune_disease"]
    assert found.findings[0].provenance.coding.code == "M32.14"


def test_one_code_can_mean_two_findings(terminology):
    # K70.31 is ascites (itself) and alcoholic liver disease (through K70).
    keys = {
        f.key
        for f in features(
            [condition("K70.31", "Alcoholic cirrhosis with ascites", system=ICD10CM)], terminology
        ).findings
    }
    assert keys == {"ascites", "non_viral_liver_disease"}


def test_descendants_are_refused_outside_icd10(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(
        "version: 1\nextends: default\nconditions:\n  varices:\n"
        '    - {system: snomed, code: "28670008", descendants: true}\n'
    )
    with pytest.raises(TerminologyError, match="only for ICD-10"):
        load_terminology(path)


def test_refuted_and_future_findings_are_ignored(terminology):
    refuted = condition("Z94.4", "Liver transplant status")
    refuted["verificationStatus"] = {"coding": [{"code": "refuted"}]}
    future = condition("K92.2", "GI haemorrhage")
    future["onsetDateTime"] = "2026-12-01"
    resolved = condition("K51.90", "Ulcerative colitis", system=ICD10CM)
    resolved["clinicalStatus"] = {"coding": [{"code": "resolved"}]}
    found = features([refuted, future, resolved], terminology).findings
    assert [(f.key, f.active) for f in found] == [("autoimmune_disease", False)]


def test_completed_procedures_with_their_date(terminology):
    planned = endoscopy("2026-12-01")
    planned["status"] = "preparation"
    (found,) = features([endoscopy("2026-09-15"), planned], terminology).findings
    assert (found.key, found.when) == ("upper_endoscopy", date(2026, 9, 15))


def test_non_viral_aetiology_is_other_only_without_hbv_or_hcv(terminology):
    nash = condition("K75.81", "NASH", system=ICD10CM)
    assert features([nash], terminology).aetiology.value == "other"
    assert features([nash, condition("B18.1", "Chronic hepatitis B")], terminology).aetiology.value == "hbv"


@pytest.mark.parametrize(
    "value, reason",
    [(-5, "implausible"), (1e308, "implausible"), ("80", "invalid"), (True, "invalid")],
)
def test_impossible_or_non_numeric_values_are_never_used(terminology, value, reason):
    observation = alt(65, "2026-11-12")
    observation["valueQuantity"]["value"] = value
    feature = features([observation], terminology).alt
    assert feature.value is None and feature.missing.value == reason
    assert features([observation], terminology).alt_over_40.value is None


def test_zero_inr_is_impossible_but_zero_afp_is_not(terminology):
    inr = lab("6301-6", 0, "{INR}", "2026-11-12")
    assert features([inr], terminology).inr.missing.value == "implausible"
    assert features([afp(0, "2026-11-12")], terminology).afp.value.value == 0


def test_documented_failure_needs_progression_after_the_start(terminology):
    sorafenib = medication_request(SORAFENIB, "2026-03-01", status="completed")
    assert history([sorafenib], terminology).sorafenib_failure.value is None
    before = history([sorafenib, progression("2026-02-01")], terminology)
    assert before.sorafenib_failure.value is None
    after = history([sorafenib, progression("2026-05-01")], terminology)
    assert after.sorafenib_failure.value is True and after.days_to_progression.value == 61


def test_toxicity_stop_by_status_reason_code_or_words(terminology):
    coded = medication_request(SORAFENIB, "2026-03-01", status="stopped")
    coded["statusReason"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason",
                "code": "sintol",
                "display": "Suspected intolerance",
            }
        ]
    }
    assert history([coded], terminology).sorafenib_toxicity.value is True
    words = medication_request(SORAFENIB, "2026-03-01", status="stopped")
    words["statusReason"] = {"text": "Hand-foot skin reaction grade 3"}
    assert history([words], terminology).sorafenib_toxicity.value is True
    other = medication_request(SORAFENIB, "2026-03-01", status="stopped")
    other["statusReason"] = {"text": "patient moved to another hospital"}
    assert history([other], terminology).sorafenib_toxicity.value is None


def test_toxicity_stop_from_an_adverse_event_naming_sorafenib(terminology):
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms-1",
        "status": "stopped",
        "medicationCodeableConcept": {"coding": [SORAFENIB]},
        "effectiveDateTime": "2026-03-01",
        "subject": {"reference": "Patient/p1"},
    }
    event = {
        "resourceType": "AdverseEvent",
        "id": "ae-1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "date": "2026-04-01",
        "event": {"text": "Grade 3 diarrhoea"},
        "suspectEntity": [{"instance": {"reference": "MedicationStatement/ms-1"}}],
    }
    found = history([statement, event], terminology).sorafenib_toxicity
    assert found.value is True and "Grade 3 diarrhoea" in found.note
    potential = {**event, "actuality": "potential"}
    assert history([statement, potential], terminology).sorafenib_toxicity.value is None


def test_checkpoint_exposures_whatever_the_class(terminology):
    atezolizumab = medication_request(
        {"system": "http://www.whocc.no/atc", "code": "L01FF05"}, "2026-01-01", status="completed"
    )
    pembrolizumab = medication_request(PEMBROLIZUMAB, "2026-02-01", status="completed")
    exposures = history([atezolizumab, pembrolizumab], terminology).checkpoint_exposures
    assert {(e.drug, e.checkpoint) for e in exposures} == {("atezolizumab", "pdl1"), ("pembrolizumab", "pd1")}


def test_icd10_alias_still_matches_both_systems(terminology):
    for system in (ICD10, ICD10CM):
        assert [f.key for f in features([condition("K92.2", "GI bleeding", system=system)], terminology).findings] == [
            "gi_bleeding"
        ]
