"""One patient, one order: which scenario applies, whether the study's evidence applies, and the
model outputs the cards (and the SMART app) show.

The scenario and applicability rules mirror the study's design (Lei et al. 2025): first-line
sorafenib in Child-Pugh A/B HCC of HBV/HCV aetiology without surgery; second line after
radiological progression on sorafenib (documented failure, not a refill, not a toxicity stop).
Every regimen a card may draft is screened first (models.screening); docs/clinical-safety.md
lists each rule with its source and test.
"""

from __future__ import annotations

from datetime import date
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from fhir_mappers.features import Feature, PatientFeatures, TreatmentHistory
from fhir_mappers.notes import Drug, Note
from models.liver_function import Albi, ChildPugh, albi, child_pugh
from models.registry import ModelBundle, RegimenComparison, RiskEstimate
from models.screening import Screen, ScreeningInput, child_pugh_note, screen_first_line, screen_second_line

FIRST_LINE_MARKERS = ("afp_over_400", "alt_over_40")


class Scenario(str, Enum):
    first_line = "first_line"  # sorafenib ordered, no sorafenib before
    second_line = "second_line"  # a TKI ordered after sorafenib


class Assessment(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)  # Screen is a plain dataclass

    scenario: Scenario
    as_of: date
    ordered_drug: str
    ordered_reference: str
    pd1_in_draft: bool = False
    features: PatientFeatures
    history: TreatmentHistory
    out_of_scope: list[Note] = Field(default_factory=list, description="Why the study's estimate does not apply.")
    caveats: list[Note] = Field(default_factory=list, description="Doubts about fit to the study, short of exclusion.")
    missing_data: dict[str, Note | str] = Field(
        default_factory=dict,
        description="Prefetch key → why it could not be read (a Note stays one: the cards word it)",
    )
    risk: RiskEstimate | None = None
    survival: RegimenComparison | None = None
    model_version: str
    child_pugh: ChildPugh | None = None
    albi: Albi | None = None
    screens: list[Screen] = Field(default_factory=list, description="Regimens a card may draft, screened.")
    drafts_withheld: Note | None = Field(None, description="Why no order is drafted at all, if none is.")
    borderline: Note | None = Field(None, description="Progression close to the 3-month boundary.")

    @property
    def missing_markers(self) -> dict[str, Feature[bool]]:
        """First-line markers without a usable value (missing, stale, unknown unit …)."""
        return {
            name: getattr(self.features, name)
            for name in FIRST_LINE_MARKERS
            if getattr(self.features, name).value is None
        }


def choose_scenario(ordered_class: str, history: TreatmentHistory, *, refill_cards: bool = False) -> Scenario | None:
    """Sorafenib with no prior sorafenib is first line; a TKI (sorafenib re-use included) after
    sorafenib is second line. Sorafenib re-ordered without documented failure is a refill, not a
    new treatment decision: no card unless `refill_cards` asks for the first-line one. Anything
    else is outside the study's evidence (None)."""
    had_sorafenib = bool(history.sorafenib_exposures)
    if not had_sorafenib:
        return Scenario.first_line if ordered_class == "sorafenib" else None
    if ordered_class not in ("sorafenib", "tki"):
        return None
    documented_change = history.sorafenib_failure.value or history.sorafenib_toxicity.value
    if ordered_class == "sorafenib" and not documented_change:
        return Scenario.first_line if refill_cards else None
    return Scenario.second_line


def second_line_exclusions(history: TreatmentHistory) -> list[Note]:
    """Why the second-line estimates do not apply: no documented failure, or a toxicity stop
    (the study excluded patients who switched for adverse events)."""
    toxicity, failure = history.sorafenib_toxicity, history.sorafenib_failure
    if toxicity.value and not failure.value:
        return [
            Note(
                "scope.stopped_for_toxicity",
                "sorafenib was stopped for toxicity, not resistance (%(note)s); the study excluded "
                "patients who switched for adverse events",
                note=toxicity.note,
            )
        ]
    if not failure.value:
        return [
            Note(
                "scope.no_progression",
                "no radiological progression after the sorafenib start is recorded "
                "(%(note)s); the estimates apply after sorafenib failure: check the latest imaging",
                note=failure.note,
            )
        ]
    return []


def first_line_exclusions(history: TreatmentHistory) -> list[Note]:
    """Sorafenib after another systemic therapy (lenvatinib, atezolizumab + bevacizumab, ...) is
    not first line: the study's primary-resistance estimate was made at first-line sorafenib."""
    prior = [*history.other_tki_exposures, *history.pd1_exposures, *history.other_systemic_exposures]
    if not prior:
        return []
    named = [
        Note(
            "scope.prior_therapy",
            "%(drug)s (%(reference)s, %(start)s)",
            drug=Drug(e.drug),
            reference=f"{e.provenance.resource_type}/{e.provenance.resource_id}",
            start=e.start_text or Note("scope.undated", "undated"),
        )
        for e in prior
    ]
    therapies = named[0]
    for more in named[1:]:
        therapies = Note("scope.list", "%(first)s, %(more)s", first=therapies, more=more)
    return [
        Note(
            "scope.not_first_line",
            "sorafenib is not first line here: prior systemic therapy %(therapies)s; "
            "the study's estimate is for first-line sorafenib",
            therapies=therapies,
        )
    ]


def out_of_scope_reasons(features: PatientFeatures, liver: ChildPugh, conditions_available: bool) -> list[Note]:
    """The study's exclusions, found in the record. A reason needs evidence: an absent finding
    is not an exclusion, except a missing HCC diagnosis when the problem list could be read."""
    reasons: list[Note] = []
    if liver.worst_known_class == "C":
        reasons.append(
            Note(
                "scope.child_pugh_c",
                "Child-Pugh class C (the study included Child-Pugh A and B only; %(child_pugh)s)",
                child_pugh=child_pugh_note(liver),
            )
        )
    if features.aetiology.value == "other":
        reasons.append(
            Note(
                "scope.other_aetiology",
                "liver disease aetiology other than HBV/HCV (the study included HBV/HCV only; %(note)s)",
                note=features.aetiology.note,
            )
        )
    if features.prior_hcc_surgery.value is True:
        reasons.append(
            Note("scope.prior_surgery", "prior surgery for HCC (the study excluded surgically treated patients)")
        )
    if conditions_available and features.hcc_diagnosis.value is not True:
        reasons.append(Note("scope.no_hcc_diagnosis", "no HCC diagnosis found among the patient's conditions"))
    return reasons


def caveats(
    features: PatientFeatures, history: TreatmentHistory, liver: ChildPugh, conditions_available: bool
) -> list[Note]:
    """What the record cannot confirm about the study's inclusion criteria."""
    notes: list[Note] = []
    if not conditions_available:
        notes.append(
            Note(
                "caveat.problem_list_unread",
                "the problem list could not be read: HBV/HCV aetiology and the conditions screened for "
                "each regimen are unknown",
            )
        )
    elif features.aetiology.value is None:
        notes.append(
            Note(
                "caveat.no_viral_diagnosis",
                "no HBV or HCV diagnosis found: the study included HBV/HCV-related HCC only",
            )
        )
    elif features.findings_of("non_viral_liver_disease", active_only=True):
        notes.append(
            Note("caveat.non_viral_also", "a non-viral liver disease is also coded: the study's patients had HBV/HCV")
        )
    if liver.worst_known_class == "B":
        notes.append(
            Note(
                "caveat.child_pugh_b",
                "Child-Pugh B: the study included A and B; %(child_pugh)s",
                child_pugh=child_pugh_note(liver),
            )
        )
    elif liver.coded_class is None:
        notes.append(
            Note(
                "caveat.child_pugh_not_recorded",
                "Child-Pugh class not recorded; %(child_pugh)s",
                child_pugh=child_pugh_note(liver),
            )
        )
    if history.sorafenib_toxicity.value and history.sorafenib_failure.value:
        notes.append(
            Note(
                "caveat.also_toxicity",
                "sorafenib was also stopped for toxicity (%(note)s)",
                note=history.sorafenib_toxicity.note,
            )
        )
    return notes


def borderline_note(history: TreatmentHistory, margin_days: int) -> Note | None:
    """Progression possibly within `margin_days` of the 3-month boundary: primary vs secondary is
    then a matter of when the scan happened (the study imaged every 8-12 weeks)."""
    days, window = history.progression_day_range, history.primary_window_days
    if days is None or history.resistance_type.value is None:
        return None
    low, high = days
    if high < window - margin_days or low > window + margin_days:
        return None
    when = (
        Note("borderline.day", "day %(day)s", day=low)
        if low == high
        else Note("borderline.days", "between day %(low)s and day %(high)s", low=low, high=high)
    )
    if history.resistance_type.value == "primary":
        return Note(
            "borderline.primary",
            "progression %(when)s after the sorafenib start is within %(margin)s days of the "
            "%(window)s-day (3-month) boundary: the primary label is borderline",
            when=when,
            margin=margin_days,
            window=window,
        )
    return Note(
        "borderline.secondary",
        "progression %(when)s after the sorafenib start is within %(margin)s days of the "
        "%(window)s-day (3-month) boundary: the secondary label is borderline",
        when=when,
        margin=margin_days,
        window=window,
    )


def assess(
    scenario: Scenario,
    features: PatientFeatures,
    history: TreatmentHistory,
    *,
    as_of: date,
    ordered_drug: str,
    ordered_reference: str,
    pd1_in_draft: bool,
    bundle: ModelBundle,
    missing_data: dict[str, str] | None = None,
    borderline_days: int = 14,
) -> Assessment:
    """The assessment of a mapped record for an order in ``scenario`` (see ``choose_scenario``).
    The record is mapped by the caller (``cds_service.orchestration``), so models see typed
    features only."""
    missing_data = dict(missing_data or {})
    liver = child_pugh(features)
    out_of_scope = out_of_scope_reasons(features, liver, "conditions" not in missing_data)
    if scenario is Scenario.second_line:
        out_of_scope += second_line_exclusions(history)
    elif not history.sorafenib_exposures:
        out_of_scope += first_line_exclusions(history)
    assessment = Assessment(
        scenario=scenario,
        as_of=as_of,
        ordered_drug=ordered_drug,
        ordered_reference=ordered_reference,
        pd1_in_draft=pd1_in_draft,
        features=features,
        history=history,
        out_of_scope=out_of_scope,
        caveats=caveats(features, history, liver, "conditions" not in missing_data),
        missing_data=missing_data,
        model_version=bundle.version,
        child_pugh=liver,
        albi=albi(features),
    )
    if assessment.out_of_scope:
        return assessment
    screening = ScreeningInput(features, history, liver, as_of, frozenset(missing_data))
    if scenario is Scenario.first_line:
        assessment.screens = screen_first_line(screening)
        if history.sorafenib_exposures:
            assessment.drafts_withheld = Note(
                "withheld.sorafenib_started",
                "sorafenib was already started (%(note)s): this order continues it",
                note=history.sorafenib_start.note,
            )
        afp_over_400, alt_over_40 = features.afp_over_400.value, features.alt_over_40.value
        if afp_over_400 is not None and alt_over_40 is not None:  # no missing_markers
            assessment.risk = bundle.resistance.predict_risk(afp_over_400=afp_over_400, alt_over_40=alt_over_40)
    else:
        assessment.screens = screen_second_line(screening)
        assessment.borderline = borderline_note(history, borderline_days)
        if history.resistance_type.value is None:
            assessment.drafts_withheld = Note(
                "withheld.resistance_type_unknown",
                "the resistance type could not be determined (%(note)s)",
                note=history.resistance_type.note,
            )
        resistance = history.resistance_type.value
        assessment.survival = bundle.survival_comparison(
            primary_resistance=None if resistance is None else resistance == "primary",
            tumour_size_over_5cm=features.tumour_size_over_5cm.value,
            multiple_tumours=features.multiple_tumours.value,
        )
    return assessment
