"""One patient, one order: which scenario applies, whether the study's evidence applies, and the
model outputs the cards (and the SMART app) show.

The scenario and applicability rules mirror the study's design (Lei et al. 2025): first-line
sorafenib in Child-Pugh A/B HCC of HBV/HCV aetiology without surgery; second line after
radiological progression on sorafenib.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any, Iterable

from pydantic import BaseModel, Field

from fhir_mappers.features import Feature, PatientFeatures, TreatmentHistory
from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.terminology import Terminology
from models.registry import ModelBundle, RegimenComparison, RiskEstimate

FIRST_LINE_MARKERS = ("afp_over_400", "alt_over_40")


class Scenario(str, Enum):
    first_line = "first_line"  # sorafenib ordered, no sorafenib before
    second_line = "second_line"  # a TKI ordered after sorafenib


class Assessment(BaseModel):
    scenario: Scenario
    as_of: date
    ordered_drug: str
    ordered_reference: str
    pd1_in_draft: bool = False
    features: PatientFeatures
    history: TreatmentHistory
    out_of_scope: list[str] = Field(default_factory=list, description="Why the study's estimate does not apply.")
    caveats: list[str] = Field(default_factory=list, description="Doubts about fit to the study, short of exclusion.")
    missing_data: dict[str, str] = Field(default_factory=dict, description="Prefetch key → why it could not be read.")
    risk: RiskEstimate | None = None
    survival: RegimenComparison | None = None
    model_version: str

    @property
    def missing_markers(self) -> dict[str, Feature]:
        """First-line markers without a usable value (missing, stale, unknown unit …)."""
        return {
            name: getattr(self.features, name)
            for name in FIRST_LINE_MARKERS
            if getattr(self.features, name).value is None
        }


def choose_scenario(ordered_class: str, history: TreatmentHistory) -> Scenario | None:
    """Sorafenib with no prior sorafenib is first line; a TKI (sorafenib re-use included) after
    sorafenib is second line; anything else is outside the study's evidence (None)."""
    had_sorafenib = bool(history.sorafenib_exposures) or history.sorafenib_start.value is not None
    if had_sorafenib and ordered_class in ("sorafenib", "tki"):
        return Scenario.second_line
    if ordered_class == "sorafenib":
        return Scenario.first_line
    return None


def out_of_scope_reasons(features: PatientFeatures, conditions_available: bool) -> list[str]:
    """The study's exclusions, found in the record. A reason needs evidence: an absent finding
    is not an exclusion, except a missing HCC diagnosis when the problem list could be read."""
    reasons: list[str] = []
    if features.child_pugh_class.value == "C":
        reasons.append("Child-Pugh class C (the study included Child-Pugh A and B only)")
    if features.aetiology.value == "other":
        reasons.append("liver disease aetiology other than HBV/HCV (the study included HBV/HCV only)")
    if features.prior_hcc_surgery.value is True:
        reasons.append("prior surgery for HCC (the study excluded surgically treated patients)")
    if conditions_available and features.hcc_diagnosis.value is not True:
        reasons.append("no HCC diagnosis found among the patient's conditions")
    return reasons


def caveats(features: PatientFeatures) -> list[str]:
    """What the record cannot confirm about the study's inclusion criteria."""
    notes: list[str] = []
    if features.aetiology.value is None:
        notes.append("no HBV or HCV diagnosis found: the study included HBV/HCV-related HCC only")
    if features.child_pugh_class.value is None:
        notes.append("Child-Pugh class not found: the study included Child-Pugh A and B only")
    return notes


def assess(
    resources: Iterable[dict[str, Any]],
    *,
    as_of: date,
    ordered_drug: str,
    ordered_class: str,
    ordered_reference: str,
    pd1_in_draft: bool,
    bundle: ModelBundle,
    terminology: Terminology,
    missing_data: dict[str, str] | None = None,
    lab_lookback_days: int = 30,
    imaging_lookback_days: int = 90,
) -> Assessment | None:
    """The assessment for this order, or None when the study has nothing to say about it."""
    resources = list(resources)
    missing_data = dict(missing_data or {})
    history = map_treatment_history(resources, terminology=terminology, as_of=as_of)
    scenario = choose_scenario(ordered_class, history)
    if scenario is None:
        return None
    features = map_patient_features(
        resources,
        as_of=as_of,
        terminology=terminology,
        lab_lookback_days=lab_lookback_days,
        imaging_lookback_days=imaging_lookback_days,
    )
    assessment = Assessment(
        scenario=scenario,
        as_of=as_of,
        ordered_drug=ordered_drug,
        ordered_reference=ordered_reference,
        pd1_in_draft=pd1_in_draft,
        features=features,
        history=history,
        out_of_scope=out_of_scope_reasons(features, "conditions" not in missing_data),
        caveats=caveats(features),
        missing_data=missing_data,
        model_version=bundle.version,
    )
    if assessment.out_of_scope:
        return assessment
    if scenario is Scenario.first_line:
        if not assessment.missing_markers:
            assessment.risk = bundle.resistance.predict_risk(
                afp_over_400=features.afp_over_400.value, alt_over_40=features.alt_over_40.value
            )
    else:
        resistance = history.resistance_type.value
        assessment.survival = bundle.survival_comparison(
            primary_resistance=None if resistance is None else resistance == "primary",
            tumour_size_over_5cm=features.tumour_size_over_5cm.value,
            multiple_tumours=features.multiple_tumours.value,
        )
    return assessment
