"""Small helpers shared by the mappers: safe dict access, provenance, candidate selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from fhir_mappers.features import CodingRef, Feature, MissingReason, Provenance
from fhir_mappers.fhirdates import FhirDate
from fhir_mappers.notes import Note, joined
from fhir_mappers.resources import OperationOutcomes, iter_resources

FINAL_STATUSES = frozenset({"final", "amended", "corrected"})
REPORT_FINAL_STATUSES = FINAL_STATUSES | {"appended"}
ERROR_STATUSES = frozenset({"entered-in-error", "cancelled"})


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def collect(resources: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], OperationOutcomes]:
    """Flatten, de-duplicate by type/id (the same resource often arrives in two prefetch
    Bundles) and index by 'Type/id' for reference look-ups."""
    outcomes = OperationOutcomes()
    flat: list[dict[str, Any]] = []
    by_ref: dict[str, dict[str, Any]] = {}
    for resource in iter_resources(resources, outcomes):
        rid = resource.get("id")
        if isinstance(rid, str):
            ref = f"{resource['resourceType']}/{rid}"
            if ref in by_ref:
                continue
            by_ref[ref] = resource
        flat.append(resource)
    return flat, by_ref, outcomes


def reference_key(reference: object) -> str | None:
    """'Observation/1', 'https://ehr/fhir/Observation/1' or 'Observation/1/_history/2'
    -> 'Observation/1'."""
    ref = text(as_dict(reference).get("reference")) if isinstance(reference, dict) else text(reference)
    if not ref:
        return None
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def provenance(
    resource: dict[str, Any],
    *,
    when: FhirDate | None = None,
    when_source: str | None = None,
    value: object = None,
    unit: str | None = None,
    comparator: str | None = None,
    coding: CodingRef | None = None,
    matched_by_name: bool = False,
) -> Provenance:
    if isinstance(value, (str, int, float, bool)) or value is None:
        original = value
    else:
        original = str(value)
    return Provenance(
        resource_type=str(resource.get("resourceType")),
        resource_id=text(resource.get("id")),
        effective=when.text if when else None,
        effective_source=when_source,
        original_value=original,
        original_unit=unit,
        comparator=comparator,
        coding=coding,
        matched_by_name=matched_by_name,
    )


class Assessment(NamedTuple):
    """What one resource says about a feature: where it comes from, and its value or why not."""

    provenance: Provenance
    value: object = None
    reason: MissingReason | None = None  # why this resource cannot be used, if it cannot
    note: str = ""


class Candidate:
    """One resource that could give a feature its value.

    `assess` runs only when select_recent looks at the candidate: most are told apart by their
    date alone, and parsing a value and building its provenance is the costly part. Slotted, with
    its own cache: functools.cached_property takes a lock (Python 3.11) and a dataclass a dict.
    """

    __slots__ = ("when", "assess", "_assessment")

    def __init__(self, when: FhirDate | None, assess: Callable[[], Assessment] | None) -> None:
        self.when = when
        self.assess = assess
        self._assessment: Assessment | None = None

    @classmethod
    def known(cls, when: FhirDate | None, *assessment: Any) -> Candidate:
        """A candidate whose Assessment fields are already computed."""
        candidate = cls(when, None)
        candidate._assessment = Assessment(*assessment)
        return candidate

    @property
    def assessment(self) -> Assessment:
        if self._assessment is None:
            self._assessment = self.assess()  # type: ignore[misc]
        return self._assessment

    @property
    def provenance(self) -> Provenance:
        return self.assessment.provenance

    @property
    def value(self) -> object:
        return self.assessment.value

    @property
    def reason(self) -> MissingReason | None:
        return self.assessment.reason

    @property
    def note(self) -> str:
        return self.assessment.note


_latest = attrgetter("when.latest")


def days_before(day: date, days: int) -> date:
    """`day` minus `days`, or the first representable date: an order dated 0001-01-01 (a test or a
    typo in the EHR) must give "nothing in the window", not an OverflowError."""
    try:
        return day - timedelta(days=days)
    except OverflowError:
        return date.min


@lru_cache(maxsize=64)
def _window_start(as_of: date, lookback_days: int) -> date:
    """First day of the look-back window; cached: a call asks for the same two windows 13 times."""
    return days_before(as_of, lookback_days)


def _window_state(c: Candidate, as_of: date, start: date) -> str:
    if c.when is None:
        return "no_date"
    if c.when.earliest > as_of:
        return "future"
    if c.when.latest < start:
        return "stale"
    if c.when.earliest >= start and c.when.latest <= as_of:
        return "in_window"
    return "straddles"


def recent_same_day(candidates: list[Candidate], as_of: date, lookback_days: int) -> list[Candidate]:
    """The usable candidates sharing the most recent date wholly within [as_of - lookback_days,
    as_of], the one select_recent reports first; empty when there is none. Callers that need
    "largest on the latest study" build their feature from this list (and missing_recent)."""
    start = _window_start(as_of, lookback_days)
    # The "in_window" state of _window_state (the date interval wholly inside the window), newest
    # first (a stable sort keeps input order within a day); only the candidates up to the first
    # usable one, and its same-day peers, need assessing.
    in_window = [c for c in candidates if (w := c.when) is not None and w.earliest >= start and w.latest <= as_of]
    in_window.sort(key=_latest, reverse=True)
    for best in in_window:
        if best.assessment.reason is None:
            latest = best.when.latest  # type: ignore[union-attr]
            return [c for c in in_window if c.when.latest == latest and c.assessment.reason is None]  # type: ignore[union-attr]
    return []


def select_recent(
    label: str, candidates: list[Candidate], as_of: date, lookback_days: int, kind: type[Feature[Any]]
) -> Feature[Any]:
    """Most recent usable candidate dated within [as_of - lookback_days, as_of], as a `kind` (the
    parametrized Feature the model declares, so that it is validated once) with its value or
    missing reason."""
    same_day = recent_same_day(candidates, as_of, lookback_days)
    if not same_day:
        return missing_recent(label, candidates, as_of, lookback_days, kind)
    best = same_day[0]
    chosen = best.assessment
    note = Note(
        "mapper.found",
        "%(label)s %(when)s (%(ref)s)",
        label=label,
        when=best.when.text,  # type: ignore[union-attr]
        ref=f"{chosen.provenance.resource_type}/{chosen.provenance.resource_id}",
    )
    if len(candidates) > 1:
        note = Note(
            "mapper.others_unused", "%(note)s; %(count)s other record(s) not used", note=note, count=len(candidates) - 1
        )
    return kind(value=chosen.value, provenance=chosen.provenance, note=note)


def missing_recent(
    label: str, candidates: list[Candidate], as_of: date, lookback_days: int, kind: type[Feature[Any]]
) -> Feature[Any]:
    """The `kind` feature missing for the most relevant candidate's reason, when recent_same_day
    found no usable candidate."""
    if not candidates:
        return kind(missing=MissingReason.not_found, note=Note("mapper.not_found", "no %(label)s found", label=label))
    start = _window_start(as_of, lookback_days)
    states = [(c, _window_state(c, as_of, start)) for c in candidates]

    def recency(item: tuple[Candidate, str]) -> tuple[int, date]:
        c, _ = item
        return (1, c.when.latest) if c.when else (0, date.min)

    past = [(c, s) for c, s in states if s != "future"]
    real = [(c, s) for c, s in past if c.reason is not MissingReason.entered_in_error]
    if real:
        c, state = max(real, key=recency)
        if state == "stale":
            days = (as_of - c.when.latest).days  # type: ignore[union-attr]
            return kind(
                missing=MissingReason.stale,
                provenance=c.provenance,
                note=Note(
                    "mapper.stale",
                    "%(label)s %(when)s is %(days)s days before the order (%(order_date)s); "
                    "look-back is %(lookback)s days",
                    label=label,
                    when=c.when.text,  # type: ignore[union-attr]
                    days=days,
                    order_date=as_of.isoformat(),
                    lookback=lookback_days,
                ),
            )
        if state == "straddles":
            return kind(
                missing=MissingReason.ambiguous,
                provenance=c.provenance,
                note=Note(
                    "mapper.too_imprecise",
                    "%(label)s date %(when)s is too imprecise for the %(lookback)s-day look-back",
                    label=label,
                    when=c.when.text,  # type: ignore[union-attr]
                    lookback=lookback_days,
                ),
            )
        if state == "no_date" and c.reason is None:
            return kind(
                missing=MissingReason.no_date,
                provenance=c.provenance,
                note=Note(
                    "mapper.no_date",
                    "%(label)s in %(ref)s has no date",
                    label=label,
                    ref=f"{c.provenance.resource_type}/{c.provenance.resource_id}",
                ),
            )
        return kind(missing=c.reason, provenance=c.provenance, note=c.note)
    if past:
        c, _ = max(past, key=recency)
        return kind(missing=MissingReason.entered_in_error, provenance=c.provenance, note=c.note)
    c = min((c for c, _ in states), key=lambda c: c.when.earliest)  # type: ignore[union-attr]
    return kind(
        missing=MissingReason.out_of_window,
        provenance=c.provenance,
        note=Note(
            "mapper.after_order",
            "only %(label)s after the order date %(order_date)s found (first %(when)s); ignored",
            label=label,
            order_date=as_of.isoformat(),
            when=c.when.text,  # type: ignore[union-attr]
        ),
    )


def with_skipped(note: str, skipped: Sequence[str]) -> str:
    """The note, and the records it passed over (if any) after it."""
    if not skipped:
        return note
    return Note("mapper.skipped", "%(note)s; skipped: %(skipped)s", note=note, skipped=joined(skipped))


def missing_like(source: Feature[Any], note: str, kind: type[Feature[Any]]) -> Feature[Any]:
    """A derived feature (a `kind`) missing for the same reason as its source."""
    return kind(
        missing=source.missing or MissingReason.not_found,
        provenance=source.provenance,
        note=Note("mapper.missing_like", "%(note)s: %(why)s", note=note, why=source.note) if source.note else note,
    )


MEDICATION_HOLDERS = frozenset({"MedicationRequest", "MedicationStatement", "MedicationAdministration"})


class MedicationSource(NamedTuple):
    """How a resource names its drug: the concept to match, and where it came from."""

    concept: dict[str, Any] | None
    # "concept": medicationCodeableConcept; "contained" / "reference": the code of a contained or
    # referenced Medication; "reference_display": only medicationReference.display; None: nothing.
    source: str | None
    unresolved: str | None = None  # a Medication reference (as written) that could not be resolved


def medication_source(resource: dict[str, Any], by_ref: dict[str, dict[str, Any]]) -> MedicationSource:
    """Every way FHIR R4 names a drug, in order of preference: medicationCodeableConcept; the
    code of a contained ('#id') Medication or of one in `by_ref` ('Medication/id' -> resource);
    last the reference's `display` text (as ``{"text": display}``). `unresolved` names a
    Medication reference that was not found, whatever the fallback."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return MedicationSource(concept, "concept")
    reference = as_dict(resource.get("medicationReference"))
    ref = text(reference.get("reference"))
    unresolved = None
    if ref and ref.startswith("#"):
        for contained in as_list(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                code = contained.get("code")
                if isinstance(code, dict):
                    return MedicationSource(code, "contained")
                break
    elif ref:
        key = reference_key(ref)
        medication = by_ref.get(key) if key else None
        if medication is not None:
            code = medication.get("code")
            if isinstance(code, dict):
                return MedicationSource(code, "reference")
        elif key is not None and key.startswith("Medication/"):
            unresolved = ref
    display = text(reference.get("display"))
    if display and display.strip():
        return MedicationSource({"text": display}, "reference_display", unresolved)
    return MedicationSource(None, None, unresolved)


def medication_concept(resource: dict[str, Any], by_ref: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """medicationCodeableConcept, or the code of the referenced (contained or bundled) Medication,
    or else ``{"text": <the reference's display>}`` (see medication_source)."""
    return medication_source(resource, by_ref).concept


def medication_references(resources: list[dict[str, Any]], by_ref: dict[str, dict[str, Any]]) -> list[str]:
    """Medication references (as written) that MedicationRequest/Statement/Administration
    resources make and `by_ref` cannot resolve: distinct, in order of first mention."""
    out: dict[str, None] = {}
    for resource in resources:
        if resource.get("resourceType") in MEDICATION_HOLDERS:
            ref = medication_source(resource, by_ref).unresolved
            if ref is not None:
                out[ref] = None
    return list(out)
