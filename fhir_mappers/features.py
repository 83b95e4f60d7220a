"""Typed features with provenance: what fhir_mappers hands to the models, cards and SMART app.

Every value says where it came from (`Provenance`) or why it is missing (`MissingReason` plus a
human-readable `note`). Everything serialises with `model_dump(mode="json")`.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


class Feature(BaseModel, Generic[T]):
    value: T | None = None
    provenance: Provenance | None = None
    missing: MissingReason | None = None
    note: str = ""

    @property
    def is_missing(self) -> bool:
        return self.value is None


class LabValue(BaseModel):
    """A lab value converted to the model unit; `comparator` is kept (e.g. '>' for '>60500')."""

    value: float
    unit: str
    comparator: str | None = None


Aetiology = Literal["hbv", "hcv", "hbv_hcv", "other", "unknown"]


class PatientFeatures(BaseModel):
    as_of: date
    afp: Feature[LabValue] = Field(default_factory=Feature)
    alt: Feature[LabValue] = Field(default_factory=Feature)
    ast: Feature[LabValue] = Field(default_factory=Feature)
    bilirubin: Feature[LabValue] = Field(default_factory=Feature)
    albumin: Feature[LabValue] = Field(default_factory=Feature)
    platelets: Feature[LabValue] = Field(default_factory=Feature)
    inr: Feature[LabValue] = Field(default_factory=Feature)
    tumour_size_cm: Feature[float] = Field(default_factory=Feature)
    tumour_count: Feature[int] = Field(default_factory=Feature)
    vascular_invasion: Feature[bool] = Field(default_factory=Feature)
    extrahepatic_metastasis: Feature[bool] = Field(default_factory=Feature)
    hcc_diagnosis: Feature[bool] = Field(default_factory=Feature)
    aetiology: Feature[Aetiology] = Field(default_factory=Feature)
    cirrhosis: Feature[bool] = Field(default_factory=Feature)
    child_pugh_class: Feature[Literal["A", "B", "C"]] = Field(default_factory=Feature)
    bclc_stage: Feature[Literal["0", "A", "B", "C", "D"]] = Field(default_factory=Feature)
    prior_hcc_surgery: Feature[bool] = Field(default_factory=Feature)
    # Derived binaries, thresholds from models.evidence (Lei et al. 2025).
    afp_over_400: Feature[bool] = Field(default_factory=Feature)
    alt_over_40: Feature[bool] = Field(default_factory=Feature)
    ast_over_40: Feature[bool] = Field(default_factory=Feature)
    tumour_size_over_5cm: Feature[bool] = Field(default_factory=Feature)
    multiple_tumours: Feature[bool] = Field(default_factory=Feature)
    operation_outcomes: list[str] = Field(default_factory=list)

    def features(self) -> dict[str, Feature]:
        return {name: value for name, value in self if isinstance(value, Feature)}

    def missing_features(self) -> dict[str, MissingReason]:
        """Feature name -> why it is missing, for every feature without a value."""
        return {
            name: (f.missing or MissingReason.not_found)
            for name, f in self.features().items()
            if f.value is None
        }


DrugClassName = Literal["sorafenib", "tki", "pd1_inhibitor", "other_systemic"]


class DrugExposure(BaseModel):
    drug: str  # canonical name, e.g. "lenvatinib"
    drug_class: DrugClassName
    start: date | None = None
    start_text: str | None = None  # the FHIR date as received (may be a year only)
    start_precision: Literal["year", "month", "day"] | None = None
    provenance: Provenance


class ProgressionEvent(BaseModel):
    date: date
    date_text: str
    date_precision: Literal["year", "month", "day"]
    provenance: Provenance


class TreatmentHistory(BaseModel):
    sorafenib_start: Feature[date] = Field(default_factory=Feature)
    sorafenib_exposures: list[DrugExposure] = Field(default_factory=list)
    other_tki_exposures: list[DrugExposure] = Field(default_factory=list)
    pd1_exposures: list[DrugExposure] = Field(default_factory=list)
    other_systemic_exposures: list[DrugExposure] = Field(default_factory=list)
    progressions: list[ProgressionEvent] = Field(default_factory=list)
    first_progression_after_sorafenib: Feature[date] = Field(default_factory=Feature)
    resistance_type: Feature[Literal["primary", "secondary"]] = Field(default_factory=Feature)
    months_to_progression: Feature[float] = Field(default_factory=Feature)
    primary_window_days: int
    operation_outcomes: list[str] = Field(default_factory=list)
