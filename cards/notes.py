"""The lower layers' notes (``fhir_mappers.notes.Note``: screening reasons, exclusions, caveats)
in the clinician's language: the note's English template is the catalogue's message id."""

from __future__ import annotations

from fhir_mappers.notes import Drug, Note

from .i18n import N_, _
from .names import drug_name

# A card's summary names the first exclusion in a few words (the detail gives it in full).
SHORT = {
    "scope.child_pugh_c": N_("Child-Pugh class C"),
    "scope.other_aetiology": N_("liver disease aetiology other than HBV/HCV"),
    "scope.prior_surgery": N_("prior surgery for HCC"),
    "scope.no_hcc_diagnosis": N_("no HCC diagnosis found among the patient's conditions"),
    "scope.stopped_for_toxicity": N_("sorafenib was stopped for toxicity, not resistance"),
    "scope.no_progression": N_("no radiological progression after the sorafenib start is recorded"),
    "scope.not_first_line": N_("sorafenib is not first line here"),
}


def say(text: str) -> str:
    """A note, and the notes and drug names among its values, in the current language; any other
    text (the record's own words) as it is."""
    if isinstance(text, Drug):
        return drug_name(text)
    if isinstance(text, Note):
        return _(text.template, **{name: say(v) if isinstance(v, str) else v for name, v in text.params.items()})
    return text


def short(note: str) -> str:
    """The few words a summary names a note by, else the whole note."""
    return _(SHORT[note.id]) if isinstance(note, Note) and note.id in SHORT else say(note)
