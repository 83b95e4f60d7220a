"""Child-Pugh and ALBI from mapped features: boundaries, comparators, unknown inputs as ranges."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappers.features import (
    ChildPughFeature,
    ClinicalFinding,
    LabFeature,
    LabValue,
    PatientFeatures,
    Provenance,
)
from models.liver_function import albi, child_pugh

AS_OF = date(2026, 11, 20)


def lab(value: float, unit: str, comparator: str | None = None) -> LabFeature:
    return LabFeature(value=LabValue(value=value, unit=unit, comparator=comparator))


def features(bilirubin=None, albumin=None, inr=None, coded=None, findings=()) -> PatientFeatures:
    values = {}
    if bilirubin is not None:
        values["bilirubin"] = lab(bilirubin * 17.1, "umol/L")  # given in mg/dL, as the table is
    if albumin is not None:
        values["albumin"] = lab(albumin * 10, "g/L")  # given in g/dL
    if inr is not None:
        values["inr"] = lab(inr, "1")
    if coded is not None:
        values["child_pugh_class"] = ChildPughFeature(value=coded)
    found = [
        ClinicalFinding(key=key, provenance=Provenance(resource_type="Condition", resource_id=key)) for key in findings
    ]
    return PatientFeatures(as_of=AS_OF, findings=found, **values)


@pytest.mark.parametrize(
    "bilirubin, albumin, inr, points",
    [
        (1.9, 3.6, 1.69, 3),  # each lab scores 1
        (2.0, 3.5, 1.7, 6),  # the lower bounds of 2 points: 2 mg/dL, 3.5 g/dL, INR 1.7
        (3.0, 2.8, 2.3, 6),  # the upper bounds of 2 points
        (3.1, 2.7, 2.4, 9),  # each lab scores 3
    ],
)
def test_lab_points_follow_the_published_cut_offs(bilirubin, albumin, inr, points):
    cp = child_pugh(features(bilirubin, albumin, inr))
    lab_items = [item for item in cp.items if item.name in ("bilirubin", "albumin", "INR")]
    assert sum(item.low for item in lab_items) == sum(item.high for item in lab_items) == points


def test_the_issue_patient_is_class_c_whatever_ascites_and_encephalopathy_are():
    cp = child_pugh(features(4.5, 2.4, 2.5))  # 9 points from the labs alone
    assert (cp.points_low, cp.points_high) == (11, 15)
    assert cp.worst_known_class == "C"


def test_unknown_inputs_give_the_range_the_known_ones_allow():
    cp = child_pugh(features(0.8, 4.0, 1.1))
    assert (cp.points_low, cp.points_high) == (5, 9)  # ascites, encephalopathy: 1-3 each
    assert (cp.class_low, cp.class_high) == ("A", "B")
    assert not cp.could_be_c
    nothing = child_pugh(features())
    assert (nothing.points_low, nothing.points_high) == (5, 15) and nothing.could_be_c


def test_coded_ascites_scores_two_to_three_points():
    cp = child_pugh(features(0.8, 4.0, 1.1, findings=["ascites"]))
    ascites = next(item for item in cp.items if item.name == "ascites")
    assert (ascites.low, ascites.high) == (2, 3)
    assert cp.points_low == 6


def test_a_coded_class_settles_an_incomplete_score_but_never_hides_a_worse_one():
    assert child_pugh(features(coded="A")).worst_known_class == "A"
    assert not child_pugh(features(coded="A")).could_be_c
    assert child_pugh(features(4.5, 2.4, 2.5, coded="A")).worst_known_class == "C"
    assert child_pugh(features(2.5, 3.0, 1.8, coded="A")).worst_known_class == "B"  # 6 + 2 = 8 at least


def test_a_comparator_is_a_bound_not_a_value():
    below = features()
    below.bilirubin = lab(17, "umol/L", "<")  # < 1 mg/dL: 1 point whatever its true value
    assert next(i for i in child_pugh(below).items if i.name == "bilirubin").high == 1
    above = features()
    above.inr = lab(2.0, "1", ">")  # above 2.0: 2 or 3 points
    inr = next(i for i in child_pugh(above).items if i.name == "INR")
    assert (inr.low, inr.high) == (2, 3)


def test_albi_grade_from_bilirubin_and_albumin():
    # log10(17.1) * 0.66 + 40 * -0.085 = -2.586: grade 2, just above the -2.60 bound
    assert albi(features(1.0, 4.0)).grade == 2
    assert albi(features(0.5, 4.5)).grade == 1
    assert albi(features(3.0, 2.5)).grade == 3
    assert albi(features(albumin=4.0)) is None
