"""Labs: code matching, unit conversion, statuses, comparators, look-back window."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappers.features import MissingReason
from fhir_mappers.patient import map_patient_features
from fhir_mappers.units import AFP_NG_PER_IU, convert

AS_OF = date(2025, 3, 10)


def lab(
    rid,
    code,
    value=None,
    unit=None,
    *,
    ucum=None,
    when="2025-03-01",
    status="final",
    comparator=None,
    system="http://loinc.org",
    **extra,
):
    quantity = {k: v for k, v in {"value": value, "unit": unit, "comparator": comparator}.items() if v is not None}
    if ucum is not None:
        quantity.update(system="http://unitsofmeasure.org", code=ucum)
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }
    resource.update(extra)
    return resource


def features(resources, terminology, **kw):
    return map_patient_features(resources, as_of=kw.pop("as_of", AS_OF), terminology=terminology, **kw)


def test_searchset_bundle_maps_every_lab_with_provenance(fixture, terminology):
    f = features([fixture("labs_searchset.json")], terminology)
    assert f.afp.value.value == pytest.approx(605.0)  # 500 IU/mL x 1.21
    assert f.afp.value.unit == "ng/mL"
    assert f.afp.provenance.resource_id == "afp-iu"
    assert f.afp.provenance.original_value == 500
    assert f.afp.provenance.original_unit == "IU/mL"
    assert f.afp.provenance.coding.code == "19176-7"
    assert f.afp.provenance.effective == "2025-03-01T08:30:00+01:00"
    assert f.afp_over_400.value is True
    assert f.afp_over_400.provenance.resource_id == "afp-iu"

    assert f.alt.value.value == pytest.approx(54.0)  # 0.9 ukat/L x 60
    assert f.alt.provenance.resource_id == "alt-ukat"  # the future ALT (300 U/L) is ignored
    assert f.alt.provenance.effective_source == "effectivePeriod.start"
    assert f.alt_over_40.value is True

    assert f.ast.provenance.resource_id == "ast-final"  # preliminary AST is skipped
    assert f.ast.value.value == 38
    assert f.ast_over_40.value is False
    assert f.ast.provenance.effective_source == "effectiveInstant"

    assert f.bilirubin.value.value == pytest.approx(20.52)  # 1.2 mg/dL x 17.1
    assert f.bilirubin.value.unit == "umol/L"
    assert f.bilirubin.provenance.effective_source == "issued"
    assert f.albumin.value.value == pytest.approx(34.0)
    assert f.albumin.value.unit == "g/L"
    assert f.platelets.value.value == 98 and f.platelets.value.unit == "10*9/L"
    assert f.inr.value.value == pytest.approx(1.3)
    assert f.operation_outcomes == ["warning: Results limited to 12 months"]
    assert f.model_dump(mode="json")["afp"]["provenance"]["coding"]["system"] == "http://loinc.org"


@pytest.mark.parametrize(
    "feature, value, ucum, text, expected",
    [
        ("afp", 100, "[IU]/mL", None, 100 * AFP_NG_PER_IU),
        ("afp", 100, None, "IU/ml", 121.0),
        ("afp", 100, "kU/L", None, 121.0),
        ("afp", 250, "ug/L", None, 250.0),
        ("afp", 0.5, "ug/mL", None, 500.0),
        ("afp", 0.5, "mg/L", None, 500.0),
        ("afp", 42, "ng/mL", None, 42.0),
        ("alt", 55, "U/L", None, 55.0),
        ("alt", 55, None, "IU/L", 55.0),
        ("alt", 55, "[IU]/L", None, 55.0),
        ("alt", 1.5, "ukat/L", None, 90.0),
        ("ast", 1.5, None, "µkat/L", 90.0),
        ("ast", 1.5, None, "μkat/l", 90.0),
        ("bilirubin", 2.0, "mg/dL", None, 34.2),
        ("bilirubin", 15, "umol/L", None, 15.0),
        ("bilirubin", 15, None, "µmol/L", 15.0),
        ("albumin", 3.5, "g/dL", None, 35.0),
        ("albumin", 35, "g/L", None, 35.0),
        ("platelets", 150, "10*9/L", None, 150.0),
        ("platelets", 150, "10*3/uL", None, 150.0),
        ("platelets", 150, None, "x10^9/L", 150.0),
        ("platelets", 150000, "/uL", None, 150.0),
        ("inr", 1.2, "{INR}", None, 1.2),
        ("inr", 1.2, "1", None, 1.2),
        ("inr", 1.2, None, None, 1.2),
        ("tumour_size", 55, "mm", None, 5.5),
        ("tumour_size", 5.5, "cm", None, 5.5),
    ],
)
def test_unit_conversion(feature, value, ucum, text, expected):
    system = "http://unitsofmeasure.org" if ucum else None
    converted = convert(feature, value, ucum, system, text)
    assert converted is not None
    assert converted[0] == pytest.approx(expected)


def test_ucum_code_wins_over_unit_text():
    # A lab that writes "ng/mL" for display but codes UCUM [IU]/mL: the code is the contract.
    assert convert("afp", 10, "[IU]/mL", "http://unitsofmeasure.org", "ng/mL")[0] == pytest.approx(12.1)


def test_unknown_unit_makes_the_lab_missing_with_the_unit_named(terminology):
    f = features([lab("afp-mol", "1834-1", 3.1, "nmol/L")], terminology)
    assert f.afp.value is None
    assert f.afp.missing is MissingReason.unit_unknown
    assert "nmol/L" in f.afp.note
    assert f.afp.provenance.resource_id == "afp-mol"
    assert f.afp_over_400.missing is MissingReason.unit_unknown


def test_unknown_unit_falls_back_to_an_older_usable_value(terminology):
    f = features(
        [lab("new", "1742-6", 3, "mmol/L", when="2025-03-08"), lab("old", "1742-6", 45, ucum="U/L", when="2025-03-01")],
        terminology,
    )
    assert f.alt.provenance.resource_id == "old"
    assert f.alt.value.value == 45


@pytest.mark.parametrize(
    "comparator, value, expected, reason",
    [
        (">", 60500, True, None),  # ">60500" is above 400
        ("<", 5, False, None),  # "<5" is below
        ("<", 500, None, MissingReason.undecidable),  # "<500" vs 400: could be either
        (">", 300, None, MissingReason.undecidable),
        (">=", 400, None, MissingReason.undecidable),  # ">=400" may equal 400, not above
        (">", 400, True, None),
        ("<=", 400, False, None),
        ("<=", 401, None, MissingReason.undecidable),
    ],
)
def test_comparators_decide_the_afp_threshold_only_when_they_can(terminology, comparator, value, expected, reason):
    f = features([lab("afp", "1834-1", value, ucum="ng/mL", comparator=comparator)], terminology)
    assert f.afp.value.comparator == comparator
    assert f.afp.provenance.comparator == comparator
    assert f.afp_over_400.value is expected
    assert f.afp_over_400.missing is reason
    assert f.afp_over_400.provenance.resource_id == "afp"


@pytest.mark.parametrize(
    "status, reason",
    [
        ("preliminary", MissingReason.not_final),
        ("registered", MissingReason.not_final),
        ("unknown", MissingReason.not_final),
        ("entered-in-error", MissingReason.entered_in_error),
        ("cancelled", MissingReason.entered_in_error),
    ],
)
def test_unusable_statuses(terminology, status, reason):
    f = features([lab("x", "1920-8", 80, ucum="U/L", status=status)], terminology)
    assert f.ast.value is None
    assert f.ast.missing is reason
    assert f.ast_over_40.missing is reason


@pytest.mark.parametrize("status", ["final", "amended", "corrected"])
def test_usable_statuses(terminology, status):
    assert features([lab("x", "1920-8", 80, ucum="U/L", status=status)], terminology).ast.value.value == 80


def test_stale_value_is_reported_with_its_date_not_used(terminology):
    f = features([lab("old", "1834-1", 900, ucum="ng/mL", when="2025-01-24")], terminology)
    assert f.afp.value is None
    assert f.afp.missing is MissingReason.stale
    assert "2025-01-24" in f.afp.note and "45 days" in f.afp.note and "30 days" in f.afp.note
    assert f.afp.provenance.resource_id == "old"
    assert f.afp_over_400.missing is MissingReason.stale
    # A longer look-back makes the same value usable.
    assert (
        features(
            [lab("old", "1834-1", 900, ucum="ng/mL", when="2025-01-24")], terminology, lab_lookback_days=60
        ).afp_over_400.value
        is True
    )


def test_future_values_are_ignored(terminology):
    f = features([lab("future", "1834-1", 900, ucum="ng/mL", when="2025-03-11")], terminology)
    assert f.afp.missing is MissingReason.out_of_window
    same_day = features([lab("today", "1834-1", 900, ucum="ng/mL", when="2025-03-10T23:59:00+08:00")], terminology)
    assert same_day.afp.value.value == 900


def test_data_absent_reason(terminology):
    obs = lab("absent", "1834-1")
    del obs["valueQuantity"]
    obs["dataAbsentReason"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}],
        "text": "Haemolysed sample",
    }
    f = features([obs], terminology)
    assert f.afp.missing is MissingReason.data_absent
    assert "Haemolysed" in f.afp.note


def test_most_recent_usable_value_wins(terminology):
    f = features(
        [
            lab("a", "1742-6", 30, ucum="U/L", when="2025-02-20"),
            lab("b", "1742-6", 70, ucum="U/L", when="2025-03-05"),
            lab("c", "1743-4", 35, ucum="U/L", when="2025-02-28"),
        ],
        terminology,
    )
    assert f.alt.provenance.resource_id == "b"
    assert f.alt_over_40.value is True


def test_missing_lab_is_not_found(terminology):
    f = features([], terminology)
    assert f.afp.missing is MissingReason.not_found
    assert f.missing_features()["afp_over_400"] is MissingReason.not_found


def test_date_with_month_precision_straddling_the_window_is_ambiguous(terminology):
    f = features([lab("m", "1834-1", 900, ucum="ng/mL", when="2025-02")], terminology)
    assert f.afp.missing is MissingReason.ambiguous
