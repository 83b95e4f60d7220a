"""Each screening rule alone: the finding withholds (or caveats) the regimens it should, and only
those; unreadable data becomes a check. The vignettes (tests/vignettes) run the same rules
through the HTTP service."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappers.features import (
    ChildPughFeature,
    ClinicalFinding,
    CodingRef,
    DrugExposure,
    PatientFeatures,
    Provenance,
    TreatmentHistory,
)
from models.liver_function import child_pugh
from models.screening import ATEZO_BEV, LENVATINIB, PD1, ScreeningInput, screen_first_line, screen_second_line

AS_OF = date(2026, 11, 20)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def finding(key: str, when: date | None = date(2026, 9, 15), active: bool = True, code: str = "X") -> ClinicalFinding:
    prov = Provenance(resource_type="Condition", resource_id=f"{key}-1", coding=CodingRef(system=ICD10CM, code=code))
    return ClinicalFinding(
        key=key, when=when, when_text=when.isoformat() if when else None, active=active, provenance=prov
    )


ENDOSCOPY = finding("upper_endoscopy")


def screens(findings=(), exposures=(), unreadable=(), coded="A") -> dict:
    features = PatientFeatures(
        as_of=AS_OF,
        findings=list(findings),
        child_pugh_class=ChildPughFeature(value=coded) if coded else ChildPughFeature(),
    )
    history = TreatmentHistory(primary_window_days=91, other_systemic_exposures=list(exposures))
    data = ScreeningInput(features, history, child_pugh(features), AS_OF, frozenset(unreadable))
    return {s.regimen: s for s in [*screen_first_line(data), *screen_second_line(data)]}


def withheld(result: dict) -> set[str]:
    return {name for name, screen in result.items() if not screen.offered}


def test_a_clean_record_offers_everything():
    assert withheld(screens([ENDOSCOPY])) == set()


@pytest.mark.parametrize(
    "key, active, regimens",
    [
        ("variceal_bleeding", True, {ATEZO_BEV}),
        ("gi_bleeding", True, {ATEZO_BEV}),
        ("varices", True, {ATEZO_BEV}),
        ("organ_transplant", False, {ATEZO_BEV, PD1}),  # transplant status is for life
        ("autoimmune_disease", True, {ATEZO_BEV, PD1}),
    ],
)
def test_each_contraindication_withholds_exactly_its_regimens(key, active, regimens):
    assert withheld(screens([ENDOSCOPY, finding(key, active=active)])) == regimens


def test_the_withheld_regimen_names_the_finding_and_its_source():
    (reason,) = screens([ENDOSCOPY, finding("variceal_bleeding", code="I85.11")])[ATEZO_BEV].contraindications
    assert reason.provenance.coding.code == "I85.11" and reason.when == "2026-09-15"
    assert reason.provenance.resource_id == "variceal_bleeding-1"


def test_an_old_resolved_bleed_does_not_withhold_but_an_undated_one_does():
    old = finding("gi_bleeding", when=date(2025, 1, 1), active=False)
    assert withheld(screens([ENDOSCOPY, old])) == set()
    undated = finding("gi_bleeding", when=None, active=False)
    assert withheld(screens([ENDOSCOPY, undated])) == {ATEZO_BEV}


def test_inactive_autoimmune_disease_is_a_caveat_not_a_contraindication():
    result = screens([ENDOSCOPY, finding("autoimmune_disease", active=False)])
    assert withheld(result) == set()
    assert any("inactive" in c.what for c in result[PD1].caveats)


def test_treated_varices_are_a_caveat():
    treated = finding("variceal_treatment", when=date(2026, 10, 1))
    result = screens([ENDOSCOPY, finding("varices", when=date(2026, 9, 1)), treated])
    assert result[ATEZO_BEV].offered and any("eradication" in c.what for c in result[ATEZO_BEV].caveats)


def test_bevacizumab_needs_an_endoscopy_within_six_months():
    assert withheld(screens([])) == {ATEZO_BEV}
    assert withheld(screens([finding("upper_endoscopy", when=date(2026, 5, 1))])) == {ATEZO_BEV}
    assert withheld(screens([finding("upper_endoscopy", when=date(2026, 6, 1))])) == set()


@pytest.mark.parametrize(
    "drug, checkpoint", [("pembrolizumab", "pd1"), ("atezolizumab", "pdl1"), ("ipilimumab", "ctla4")]
)
def test_prior_checkpoint_inhibitor_withholds_every_checkpoint_regimen(drug, checkpoint):
    exposure = DrugExposure(
        drug=drug,
        drug_class="other_systemic",
        checkpoint=checkpoint,
        start_text="2025-12-01",
        provenance=Provenance(resource_type="MedicationRequest", resource_id="prior"),
    )
    result = screens([ENDOSCOPY], exposures=[exposure])
    assert withheld(result) == {ATEZO_BEV, PD1}
    assert drug in result[PD1].contraindications[0].what


def test_unreadable_data_becomes_a_check_not_a_silent_pass():
    result = screens([ENDOSCOPY], unreadable=["conditions", "medicationRequests"])
    assert withheld(result) == set()
    assert any("problem list" in check for check in result[ATEZO_BEV].checks)
    assert any("prior immunotherapy" in check for check in result[PD1].checks)
    no_procedures = screens([], unreadable=["procedures"])
    assert no_procedures[ATEZO_BEV].offered
    assert any("upper endoscopy" in check for check in no_procedures[ATEZO_BEV].checks)


def test_child_pugh_b_caveats_every_regimen_and_possible_c_is_a_check():
    b = screens([ENDOSCOPY], coded="B")
    assert all(any("Child-Pugh B" in c.what for c in s.caveats) for s in b.values())
    unknown = screens([ENDOSCOPY], coded=None)
    assert all(any("Child-Pugh class" in check for check in s.checks) for s in unknown.values())
    assert set(unknown) == {LENVATINIB, ATEZO_BEV, PD1}
