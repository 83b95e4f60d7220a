"""Typed features with provenance: what fhir_mappers hands to the models, cards and SMART app.

Every value says where it came from (`Provenance`) or why it is missing (`MissingReason` plus a
human-readable `note`). Everything serialises with `model_dump(mode="json")`.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from fhir_mappers.notes import Note

T = TypeVar("T")


class MissingReason(str, Enum):
    not_found = "not_found"
    stale = "stale"
    unit_unknown = "unit_unknown"
    entered_in_error = "entered_in_error"
    not_final = "not_final"
    data_absent = "data_absent"
    out_of_window = "out_of_window"  # only values after as_of (the order date) were found
    ambiguous = "ambiguous"  # e.g. date too imprecise, conflicting sources
    undecidable = "undecidable"  # comparator leaves a threshold question open
    invalid = "invalid"  # malformed value (wrong type, not a number, ...)
    no_date = "no_date"
    no_sorafenib = "no_sorafenib"
    no_progression = "no_progression"
    implausible = "implausible"  # a number no human body can have (negative AFP, INR 0, ...)


class CodingRef(BaseModel):
    """The coding that matched, as received."""

    model_config = ConfigDict(frozen=True)
    system: str | None = None
    code: str | None = None
    display: str | None = None


class Provenance(BaseModel):
    """Where a value came from, with the value exactly as the EHR sent it."""

    resource_type: str
    resource_id: str | None = None
    effective: str | None = None  # the FHIR date/dateTime string used
    effective_source: str | None = None  # which element gave it: effectiveDateTime, issued, ...
    original_value: str | float | int | bool | None = None
    original_unit: str | None = None
    comparator: str | None = None
    coding: CodingRef | None = None
    # Recognised by Observation.code.text or a coding's display (no code matched): shown so that
    # a reviewer can check the name, which the terminology file matched exactly.
    matched_by_name: bool = False


class Feature(BaseModel, Generic[T]):
    value: T | None = None
    provenance: Provenance | None = None
    missing: MissingReason | None = None
    note: Note | str = ""  # a Note stays one (the cards translate it); JSON has the English

    @property
    def is_missing(self) -> bool:
        return self.value is None


class LabValue(BaseModel):
    """A lab value converted to the model unit; `comparator` is kept (e.g. '>' for '>60500')."""

    value: float
    unit: str
    comparator: str | None = None
    from_text: bool = False  # read from a valueString such as ">1210 ng/mL", not a valueQuantity


Aetiology = Literal["hbv", "hcv", "hbv_hcv", "other", "unknown"]
ChildPughClass = Literal["A", "B", "C"]
BclcStage = Literal["0", "A", "B", "C", "D"]
ResistanceType = Literal["primary", "secondary"]

# The parametrized features the models below declare. The mappers build these directly: a plain
# Feature(...) is not an instance of Feature[bool], so the model would validate it a second time
# into the declared type (23 fields a call; bench/README.md).
LabFeature = Feature[LabValue]
BoolFeature = Feature[bool]
FloatFeature = Feature[float]
IntFeature = Feature[int]
DateFeature = Feature[date]
AetiologyFeature = Feature[Aetiology]
ChildPughFeature = Feature[ChildPughClass]
BclcFeature = Feature[BclcStage]
ResistanceFeature = Feature[ResistanceType]


class ClinicalFinding(BaseModel):
    """A coded Condition or Procedure that bears on whether a regimen may be offered."""

    key: str  # terminology key, e.g. "varices", "upper_endoscopy"
    when: date | None = None  # onset, recorded or performed (earliest possible day)
    when_text: str | None = None
    active: bool = True  # Conditions: clinicalStatus active/recurrence/relapse (or none given)
    provenance: Provenance


class PatientFeatures(BaseModel):
    as_of: date
    afp: LabFeature = Field(default_factory=LabFeature)
    alt: LabFeature = Field(default_factory=LabFeature)
    ast: LabFeature = Field(default_factory=LabFeature)
    bilirubin: LabFeature = Field(default_factory=LabFeature)
    albumin: LabFeature = Field(default_factory=LabFeature)
    platelets: LabFeature = Field(default_factory=LabFeature)
    inr: LabFeature = Field(default_factory=LabFeature)
    tumour_size_cm: FloatFeature = Field(default_factory=FloatFeature)
    tumour_count: IntFeature = Field(default_factory=IntFeature)
    vascular_invasion: BoolFeature = Field(default_factory=BoolFeature)
    extrahepatic_metastasis: BoolFeature = Field(default_factory=BoolFeature)
    hcc_diagnosis: BoolFeature = Field(default_factory=BoolFeature)
    aetiology: AetiologyFeature = Field(default_factory=AetiologyFeature)
    cirrhosis: BoolFeature = Field(default_factory=BoolFeature)
    child_pugh_class: ChildPughFeature = Field(default_factory=ChildPughFeature)
    bclc_stage: BclcFeature = Field(default_factory=BclcFeature)
    prior_hcc_surgery: BoolFeature = Field(default_factory=BoolFeature)
    # Derived binaries, thresholds from hcc_evidence (Lei et al. 2025).
    afp_over_400: BoolFeature = Field(default_factory=BoolFeature)
    alt_over_40: BoolFeature = Field(default_factory=BoolFeature)
    ast_over_40: BoolFeature = Field(default_factory=BoolFeature)
    tumour_size_over_5cm: BoolFeature = Field(default_factory=BoolFeature)
    multiple_tumours: BoolFeature = Field(default_factory=BoolFeature)
    # Safety screening: every usable coded finding in the terminology's safety keys, newest first.
    findings: list[ClinicalFinding] = Field(default_factory=list)
    operation_outcomes: list[str] = Field(default_factory=list)

    def findings_of(self, *keys: str, active_only: bool = False) -> list[ClinicalFinding]:
        return [f for f in self.findings if f.key in keys and (f.active or not active_only)]

    def features(self) -> dict[str, Feature[Any]]:
        return {name: value for name, value in self if isinstance(value, Feature)}

    def missing_features(self) -> dict[str, MissingReason]:
        """Feature name -> why it is missing, for every feature without a value."""
        return {name: (f.missing or MissingReason.not_found) for name, f in self.features().items() if f.value is None}


DrugClassName = Literal["sorafenib", "tki", "pd1_inhibitor", "other_systemic"]


class DrugExposure(BaseModel):
    drug: str  # canonical name, e.g. "lenvatinib"
    drug_class: DrugClassName
    start: date | None = None
    start_text: str | None = None  # the FHIR date as received (may be a year only)
    start_precision: Literal["year", "month", "day"] | None = None
    checkpoint: str | None = None  # "pd1", "pdl1" or "ctla4" for an immune-checkpoint inhibitor
    provenance: Provenance


class ProgressionEvent(BaseModel):
    date: date
    date_text: str
    date_precision: Literal["year", "month", "day"]
    provenance: Provenance


class TreatmentHistory(BaseModel):
    sorafenib_start: DateFeature = Field(default_factory=DateFeature)
    sorafenib_exposures: list[DrugExposure] = Field(default_factory=list)
    other_tki_exposures: list[DrugExposure] = Field(default_factory=list)
    pd1_exposures: list[DrugExposure] = Field(default_factory=list)
    other_systemic_exposures: list[DrugExposure] = Field(default_factory=list)
    progressions: list[ProgressionEvent] = Field(default_factory=list)
    first_progression_after_sorafenib: DateFeature = Field(default_factory=DateFeature)
    resistance_type: ResistanceFeature = Field(default_factory=ResistanceFeature)
    months_to_progression: FloatFeature = Field(default_factory=FloatFeature)
    days_to_progression: IntFeature = Field(default_factory=IntFeature)
    # Earliest and latest possible day of the first progression after the start (imprecise dates
    # give a range; exact ones a single day twice); None without a dated progression after it.
    progression_day_range: tuple[int, int] | None = None
    # Documented sorafenib failure: radiological progression dated after the sorafenib start.
    sorafenib_failure: BoolFeature = Field(default_factory=BoolFeature)
    # Sorafenib stopped for toxicity (a status reason or an AdverseEvent naming it): not resistance.
    sorafenib_toxicity: BoolFeature = Field(default_factory=BoolFeature)
    primary_window_days: int
    operation_outcomes: list[str] = Field(default_factory=list)

    @property
    def checkpoint_exposures(self) -> list[DrugExposure]:
        """Every prior PD-1, PD-L1 or CTLA-4 inhibitor, whatever its class in the terminology."""
        every = [*self.pd1_exposures, *self.other_systemic_exposures, *self.other_tki_exposures]
        return [e for e in every if e.checkpoint]
