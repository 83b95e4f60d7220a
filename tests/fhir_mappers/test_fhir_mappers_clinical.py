"""Imaging, tumour burden, conditions, staging, surgery; terminology extension."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappers.errors import TerminologyError
from fhir_mappers.features import MissingReason
from fhir_mappers.patient import map_patient_features
from fhir_mappers.terminology import load_terminology

AS_OF = date(2025, 3, 10)


def test_imaging_and_conditions(fixture, terminology):
    f = map_patient_features([fixture("imaging_conditions.json")], as_of=AS_OF, terminology=terminology)
    # Largest lesion on the latest study (the report's date is inherited by its results).
    assert f.tumour_size_cm.value == pytest.approx(6.2)
    assert f.tumour_size_cm.provenance.resource_id == "lesion-1"
    assert f.tumour_size_cm.provenance.original_value == 62
    assert f.tumour_size_cm.provenance.original_unit == "mm"
    assert f.tumour_size_cm.provenance.effective_source == "DiagnosticReport/ct-2025-02-10.effectiveDateTime"
    assert f.tumour_size_over_5cm.value is True
    # Two measured lesions: at least two tumours, even without a count.
    assert f.multiple_tumours.value is True
    assert f.tumour_count.missing is MissingReason.not_found
    assert f.extrahepatic_metastasis.value is True
    assert f.extrahepatic_metastasis.provenance.resource_id == "mets"
    assert f.vascular_invasion.missing is MissingReason.not_found
    assert f.hcc_diagnosis.value is True
    assert f.hcc_diagnosis.provenance.coding.code == "C220"  # ICD-10 without the dot
    assert f.aetiology.value == "hbv"  # the refuted HCV does not count
    assert f.cirrhosis.value is True
    # The BCLC stage sits on the HCC Condition dated at diagnosis: older than the imaging window.
    assert f.bclc_stage.missing is MissingReason.stale
    assert f.bclc_stage.provenance.resource_id == "hcc" and "2024-09-15" in f.bclc_stage.note
    wide = map_patient_features(
        [fixture("imaging_conditions.json")], as_of=AS_OF, terminology=terminology, imaging_lookback_days=365
    )
    assert wide.bclc_stage.value == "C"
    assert f.child_pugh_class.value == "B"
    assert f.child_pugh_class.provenance.resource_id == "child-pugh"
    assert f.prior_hcc_surgery.missing is MissingReason.not_found


def test_stale_imaging(fixture, terminology):
    f = map_patient_features([fixture("imaging_conditions.json")], as_of=date(2025, 6, 1), terminology=terminology)
    assert f.tumour_size_cm.missing is MissingReason.stale
    assert f.tumour_size_over_5cm.missing is MissingReason.stale
    longer = map_patient_features(
        [fixture("imaging_conditions.json")], as_of=date(2025, 6, 1), terminology=terminology, imaging_lookback_days=120
    )
    assert longer.tumour_size_cm.value == pytest.approx(6.2)


def test_single_small_lesion(terminology):
    obs = {
        "resourceType": "Observation",
        "id": "l",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "33728-7"}]},
        "effectiveDateTime": "2025-03-01",
        "valueQuantity": {"value": 45, "unit": "mm"},
    }
    f = map_patient_features([obs], as_of=AS_OF, terminology=terminology)
    assert f.tumour_size_cm.value == pytest.approx(4.5)
    assert f.tumour_size_over_5cm.value is False
    assert f.multiple_tumours.value is None  # one measured lesion says nothing about the count


def test_refuted_and_inactive_conditions_are_skipped(terminology):
    conditions = [
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "19943007"}]},
            "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
        },
        {
            "resourceType": "Condition",
            "id": "c2",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "25370001"}]},
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
        },
        {
            "resourceType": "Condition",
            "id": "c3",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B18.2"}]},
            "clinicalStatus": {"coding": [{"code": "relapse"}]},
        },
        {
            "resourceType": "Condition",
            "id": "c4",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B18.1"}]},
        },
    ]
    f = map_patient_features(conditions, as_of=AS_OF, terminology=terminology)
    assert f.cirrhosis.missing is MissingReason.not_found and "entered-in-error" in f.cirrhosis.note
    assert f.hcc_diagnosis.missing is MissingReason.not_found and "resolved" in f.hcc_diagnosis.note
    assert f.aetiology.value == "hbv_hcv"


HOSPITAL_FILE = """
version: 1
extends: default
systems:
  lis: http://lis.hospital.example.cn/codes
labs:
  afp:
    - {system: lis, code: "AFP-01", display: "甲胎蛋白 AFP"}
imaging:
  tumour_count:
    - {system: lis, code: "RAD-NODULES", display: "Number of liver nodules"}
findings:
  vascular_invasion:
    - {system: lis, code: "PVTT", display: "Portal vein tumour thrombus"}
staging:
  bclc: [{system: lis, code: "BCLC", display: "BCLC stage"}]
  bclc_b: [{system: lis, code: "BCLC-B"}]
procedures:
  hcc_surgery:
    - {system: lis, code: "OP-HEP-07", display: "Right hepatectomy"}
drugs:
  sintilimab:
    codes: [{system: lis, code: "XD-0042"}]
"""


def test_local_codes_via_an_extended_terminology_file(tmp_path, terminology):
    path = tmp_path / "hospital.yaml"
    path.write_text(HOSPITAL_FILE, encoding="utf-8")
    local = load_terminology(path)
    lis = "http://lis.hospital.example.cn/codes"
    resources = [
        {
            "resourceType": "Observation",
            "id": "afp-local",
            "status": "final",
            "code": {"coding": [{"system": lis, "code": "AFP-01"}], "text": "甲胎蛋白"},
            "effectiveDateTime": "2025-03-03",
            "valueQuantity": {"value": 1250.5, "unit": "ng/ml"},
        },
        {
            "resourceType": "Observation",
            "id": "count",
            "status": "final",
            "code": {"coding": [{"system": lis, "code": "RAD-NODULES"}]},
            "effectiveDateTime": "2025-02-01",
            "valueInteger": 1,
        },
        {
            "resourceType": "Observation",
            "id": "pvtt",
            "status": "final",
            "code": {"coding": [{"system": lis, "code": "PVTT"}]},
            "effectiveDateTime": "2025-02-01",
            "valueBoolean": False,
        },
        {
            "resourceType": "Observation",
            "id": "bclc",
            "status": "final",
            "code": {"coding": [{"system": lis, "code": "BCLC"}]},
            "effectiveDateTime": "2025-02-01",
            "valueCodeableConcept": {"coding": [{"system": lis, "code": "BCLC-B"}]},
        },
        {
            "resourceType": "Procedure",
            "id": "op",
            "status": "completed",
            "code": {"coding": [{"system": lis, "code": "OP-HEP-07"}]},
            "performedDateTime": "2022-05-04",
        },
        {
            "resourceType": "Observation",
            "id": "afp-loinc",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1834-1"}]},
            "effectiveDateTime": "2025-02-01",
            "valueQuantity": {"value": 3, "unit": "ng/mL"},
        },
    ]
    f = map_patient_features(resources, as_of=AS_OF, terminology=local)
    assert f.afp.provenance.resource_id == "afp-local"
    assert f.afp.provenance.coding.code == "AFP-01"
    assert f.afp_over_400.value is True
    assert f.tumour_count.value == 1 and f.multiple_tumours.value is False
    assert f.vascular_invasion.value is False
    assert f.bclc_stage.value == "B"
    assert f.prior_hcc_surgery.value is True and f.prior_hcc_surgery.provenance.resource_id == "op"
    assert f.afp.provenance.matched_by_name is False  # the local code matched: the name is not consulted
    # The shipped default knows none of the local codes, but knows AFP's Chinese name (and says so).
    default = map_patient_features(resources, as_of=AS_OF, terminology=terminology)
    assert default.afp.provenance.resource_id == "afp-local" and default.afp.provenance.matched_by_name
    assert default.afp.provenance.coding.display == "甲胎蛋白"
    assert default.vascular_invasion.missing is MissingReason.not_found
    assert (
        "sintilimab" in local.drugs
        and local.match_drug({"coding": [{"system": lis, "code": "XD-0042"}]})[0] == "sintilimab"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("version: 1\nlabs: [", "not valid YAML"),
        ("labs: {}", "version: 1"),
        ("version: 1\nlabz: {}", "unknown top-level key"),
        ("version: 1\nlabs:\n  aft: []", "unknown key(s) ['aft']"),
        ("version: 1\nlabs:\n  afp: [{system: http://loinc.org}]", "needs 'system' and 'code'"),
        ("version: 1\nlabs:\n  afp: [{system: lonic, code: '1834-1'}]", "neither a declared alias nor a URI"),
        ("version: 1\ndrugs:\n  foo: {class: antibiotic, names: [foo]}", "class must be one of"),
        ("version: 1\nextends: hospital", "'extends' must be"),
    ],
)
def test_invalid_terminology_files_fail_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TerminologyError) as err:
        load_terminology(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_terminology_file(tmp_path):
    with pytest.raises(TerminologyError, match="cannot read"):
        load_terminology(tmp_path / "nope.yaml")


def test_a_file_without_extends_replaces_the_default(tmp_path):
    path = tmp_path / "only.yaml"
    path.write_text("version: 1\nlabs:\n  afp: [{system: http://x.example/lab, code: A}]\n", encoding="utf-8")
    t = load_terminology(path)
    assert t.match("labs", {"coding": [{"system": "http://x.example/lab", "code": "A"}]})[0] == "afp"
    assert t.match("labs", {"coding": [{"system": "http://loinc.org", "code": "1834-1"}]}) is None


def test_drug_codes_in_file_order(terminology):
    codes = terminology.drug_codes("sorafenib")
    assert codes[0].code == "495881" and codes[0].system == "http://www.nlm.nih.gov/research/umls/rxnorm"
    assert codes[-1].code == "L01EX02"
    assert terminology.drug_codes("no-such-drug") == []
