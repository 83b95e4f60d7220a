"""Eligibility and contraindication screening of every regimen the cards might draft as an order.

A suggestion is an order a clinician may sign with one click, so a regimen is drafted only when
the record does not argue against it. Each rule below has a line in docs/clinical-safety.md with
its source (drug label, pivotal-trial eligibility, guideline) and the test that proves it.

- A finding that argues against a regimen (contraindication) withholds it; the card names the
  finding with its code, date and source.
- Data needed to screen that could not be read turns into a check the suggestion names first.
- Doubts short of that (Child-Pugh B, treated varices) are caveats on the offered regimen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_mappers._common import days_before
from fhir_mappers.features import ClinicalFinding, DrugExposure, PatientFeatures, Provenance, TreatmentHistory
from fhir_mappers.notes import Drug, Note
from models.liver_function import ChildPugh

# IMbrave150 (atezolizumab + bevacizumab; Tecentriq prescribing information, section 14): patients
# were evaluated for varices within 6 months before treatment and excluded with variceal bleeding
# within 6 months or untreated / incompletely treated varices with bleeding or high risk of it.
ENDOSCOPY_WINDOW = timedelta(days=183)  # 6 months
BLEEDING_WINDOW = timedelta(days=183)  # 6 months

LENVATINIB = "lenvatinib"
ATEZO_BEV = "atezolizumab + bevacizumab"
PD1 = "PD-1 inhibitor"
CHECKPOINT_NAMES = {"pd1": "PD-1", "pdl1": "PD-L1", "ctla4": "CTLA-4"}
# What the cards name in a caveat, and the Child-Pugh items (models.liver_function) by name.
FINDING_NAMES = {
    "variceal_bleeding": Note("finding.variceal_bleeding", "variceal bleeding"),
    "gi_bleeding": Note("finding.gi_bleeding", "gastrointestinal bleeding"),
    "varices": Note("finding.varices", "varices"),
}
CHILD_PUGH_ITEMS = {
    "bilirubin": Note("child_pugh.bilirubin", "bilirubin"),
    "albumin": Note("child_pugh.albumin", "albumin"),
    "INR": Note("child_pugh.inr", "INR"),
    "ascites": Note("child_pugh.ascites", "ascites"),
    "encephalopathy": Note("child_pugh.encephalopathy", "encephalopathy"),
}


@dataclass(frozen=True)
class Reason:
    """A finding (or an absence) and the record it comes from; the cards word the citation."""

    what: Note
    provenance: Provenance | None = None
    when: str | None = None  # the date as written in the record


@dataclass
class Screen:
    """One regimen, screened against the record."""

    regimen: str
    contraindications: list[Reason] = field(default_factory=list)  # findings that withhold it
    checks: list[Note] = field(default_factory=list)  # what to check before signing it
    caveats: list[Reason] = field(default_factory=list)  # doubts that do not withhold it

    @property
    def offered(self) -> bool:
        return not self.contraindications


def child_pugh_note(cp: ChildPugh) -> Note:
    """``ChildPugh.describe`` as a note: the score, the coded class, the items not known."""
    if cp.points_low == cp.points_high:
        scored = Note(
            "child_pugh.points", "%(points)s points (class %(letter)s)", points=cp.points_low, letter=cp.class_low
        )
    else:
        scored = Note(
            "child_pugh.point_range",
            "%(low)s–%(high)s points (class %(class_low)s–%(class_high)s)",
            low=cp.points_low,
            high=cp.points_high,
            class_low=cp.class_low,
            class_high=cp.class_high,
        )
    note = Note("child_pugh.scored", "Child-Pugh from the record: %(scored)s", scored=scored)
    if cp.coded_class:
        note = Note("child_pugh.coded", "%(note)s; recorded class %(letter)s", note=note, letter=cp.coded_class)
    for item in cp.unknown_items:
        note = Note(
            "child_pugh.unknown", "%(note)s; not known: %(item)s", note=note, item=CHILD_PUGH_ITEMS.get(item, item)
        )
    return note


def _finding(what: Note, finding: ClinicalFinding) -> Reason:
    return Reason(what, finding.provenance, finding.when_text)


def _exposure(exposure: DrugExposure) -> Reason:
    what = Note("screening.prior_checkpoint", "prior checkpoint inhibitor %(drug)s", drug=Drug(exposure.drug))
    if exposure.checkpoint in CHECKPOINT_NAMES:
        what = Note(
            "screening.prior_checkpoint_target",
            "prior %(target)s inhibitor %(drug)s",
            target=CHECKPOINT_NAMES[exposure.checkpoint],
            drug=Drug(exposure.drug),
        )
    return Reason(what, exposure.provenance, exposure.start_text)


def _recent(finding: ClinicalFinding, as_of: date, window: timedelta) -> bool:
    """Within the window before the order; an undated finding counts as recent (cannot rule out)."""
    return finding.when is None or finding.when >= days_before(as_of, window.days)


@dataclass(frozen=True)
class ScreeningInput:
    features: PatientFeatures
    history: TreatmentHistory
    child_pugh: ChildPugh
    as_of: date
    unreadable: frozenset[str] = frozenset()  # prefetch keys that could not be read


def _liver(screen: Screen, data: ScreeningInput) -> None:
    """Every regimen: the pivotal trials of lenvatinib (REFLECT), atezolizumab + bevacizumab
    (IMbrave150) and the PD-1 inhibitors enrolled Child-Pugh A."""
    cp = data.child_pugh
    if cp.worst_known_class == "B":
        screen.caveats.append(
            Reason(
                Note(
                    "screening.child_pugh_b",
                    "Child-Pugh B (%(child_pugh)s): the pivotal trials enrolled Child-Pugh A; evidence in B is limited",
                    child_pugh=child_pugh_note(cp),
                )
            )
        )
    elif cp.could_be_c:
        screen.checks.append(
            Note(
                "screening.child_pugh_could_be_c",
                "Child-Pugh class (the record allows up to %(points)s points, class C)",
                points=cp.points_high,
            )
        )


def _conditions_readable(screen: Screen, data: ScreeningInput, what: Note) -> None:
    if "conditions" in data.unreadable:
        screen.checks.append(
            Note("screening.problem_list_unread", "the problem list (it could not be read) for %(what)s", what=what)
        )


def _immunotherapy(screen: Screen, data: ScreeningInput) -> None:
    """Any immune-checkpoint inhibitor: organ transplant (rejection; labels' warnings), active
    autoimmune disease (excluded from the trials), prior PD-1/PD-L1/CTLA-4 exposure (no evidence
    for re-challenge here; never draft the same agent again)."""
    features, history = data.features, data.history
    for finding in features.findings_of("organ_transplant"):
        screen.contraindications.append(_finding(Note("screening.organ_transplant", "organ transplant"), finding))
    for finding in features.findings_of("autoimmune_disease"):
        if finding.active:
            screen.contraindications.append(
                _finding(Note("screening.autoimmune_active", "active autoimmune disease"), finding)
            )
        else:
            screen.caveats.append(
                _finding(Note("screening.autoimmune_inactive", "history of autoimmune disease, inactive"), finding)
            )
    for exposure in history.checkpoint_exposures:
        screen.contraindications.append(_exposure(exposure))
    _conditions_readable(
        screen, data, Note("screening.transplant_and_autoimmune", "organ transplant and autoimmune disease")
    )
    unread = sorted(k for k in data.unreadable if k.startswith("medication"))
    if unread:
        screen.checks.append(
            Note(
                "screening.treatment_history_unread",
                "prior immunotherapy (treatment history %(keys)s could not be read)",
                keys=", ".join(unread),
            )
        )


def _bevacizumab(screen: Screen, data: ScreeningInput) -> None:
    """Bevacizumab: bleeding varices or recent GI bleeding, untreated varices, and no upper
    endoscopy within 6 months (IMbrave150 eligibility; bevacizumab label, haemorrhage)."""
    features, as_of = data.features, data.as_of
    for finding in features.findings_of("variceal_bleeding", "gi_bleeding"):
        if finding.active or _recent(finding, as_of, BLEEDING_WINDOW):
            what = (
                Note("screening.variceal_bleeding_recent", "bleeding varices, active or within 6 months")
                if finding.key == "variceal_bleeding"
                else Note("screening.gi_bleeding_recent", "gastrointestinal bleeding, active or within 6 months")
            )
            screen.contraindications.append(_finding(what, finding))
    treatments = features.findings_of("variceal_treatment")
    for finding in features.findings_of("varices", active_only=True):
        treated = [t for t in treatments if t.when is not None and (finding.when is None or t.when >= finding.when)]
        if treated:
            screen.caveats.append(
                _finding(
                    Note("screening.varices_treated", "varices treated: confirm eradication before bevacizumab"),
                    treated[0],
                )
            )
        else:
            screen.contraindications.append(
                _finding(
                    Note("screening.varices_untreated", "varices with no endoscopic treatment recorded after them"),
                    finding,
                )
            )
    endoscopies = [
        f
        for f in features.findings_of("upper_endoscopy", "variceal_treatment")
        if f.when is not None and f.when >= days_before(as_of, ENDOSCOPY_WINDOW.days)
    ]
    if "procedures" in data.unreadable:
        screen.checks.append(
            Note("screening.procedures_unread", "an upper endoscopy within 6 months (procedures could not be read)")
        )
    elif not endoscopies:
        screen.contraindications.append(
            Reason(
                Note(
                    "screening.no_endoscopy",
                    "no upper endoscopy recorded in the 6 months before %(date)s "
                    "(varices must be assessed and treated before bevacizumab)",
                    date=as_of.isoformat(),
                )
            )
        )
    _conditions_readable(screen, data, Note("screening.varices_and_bleeding", "varices and bleeding"))


def _bleeding_caveat(screen: Screen, data: ScreeningInput) -> None:
    """Lenvatinib: haemorrhage is a labelled warning; recorded bleeding or varices are named."""
    for finding in data.features.findings_of("variceal_bleeding", "gi_bleeding", "varices", active_only=True):
        what = Note(
            "screening.lenvatinib_haemorrhage",
            "haemorrhage is a labelled risk of lenvatinib; %(finding)s",
            finding=FINDING_NAMES[finding.key],
        )
        screen.caveats.append(_finding(what, finding))


def screen_first_line(data: ScreeningInput) -> list[Screen]:
    """The first-line alternatives to sorafenib the study names, each screened."""
    lenvatinib = Screen(regimen=LENVATINIB)
    _liver(lenvatinib, data)
    _bleeding_caveat(lenvatinib, data)
    atezo_bev = Screen(regimen=ATEZO_BEV)
    _liver(atezo_bev, data)
    _immunotherapy(atezo_bev, data)
    _bevacizumab(atezo_bev, data)
    atezo_bev.caveats.append(
        Reason(
            Note(
                "screening.atezo_bev_judged_unsuitable",
                "a sorafenib order often means atezolizumab + bevacizumab was already judged unsuitable: check why",
            )
        )
    )
    return [lenvatinib, atezo_bev]


def screen_second_line(data: ScreeningInput) -> list[Screen]:
    """Adding a PD-1 inhibitor to the TKI (the study's combination arm), screened."""
    pd1 = Screen(regimen=PD1)
    _liver(pd1, data)
    _immunotherapy(pd1, data)
    return [pd1]
