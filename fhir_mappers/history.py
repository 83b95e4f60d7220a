"""Treatment history and resistance: sorafenib and other systemic exposures, radiological
progressions, sorafenib stopped for toxicity, and the resistance type (primary / secondary)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from fhir_mappers._common import (
    FINAL_STATUSES,
    MEDICATION_HOLDERS,
    REPORT_FINAL_STATUSES,
    as_dict,
    as_list,
    medication_concept,
    provenance,
    reference_key,
    text,
    with_skipped,
)
from fhir_mappers.features import (
    BoolFeature,
    CodingRef,
    DateFeature,
    DrugExposure,
    Feature,
    FloatFeature,
    IntFeature,
    MissingReason,
    ProgressionEvent,
    Provenance,
    ResistanceFeature,
    TreatmentHistory,
)
from fhir_mappers.fhirdates import FhirDate, effective_date, parse_fhir_date
from fhir_mappers.notes import Drug, Note
from fhir_mappers.record import PatientRecord, patient_record
from fhir_mappers.terminology import Terminology
from hcc_evidence import load_evidence

DAYS_PER_MONTH = 365.25 / 12

NOT_TAKEN = frozenset({"entered-in-error", "cancelled", "draft", "not-taken", "not-done"})


_PRECISION = {
    "year": Note("history.precision_year", "year"),
    "month": Note("history.precision_month", "month"),
    "day": Note("history.precision_day", "day"),
}


def _imprecise(event: Note, precision: str) -> Note:
    return Note(
        "history.imprecise",
        "%(event)s is only known to %(precision)s precision",
        event=event,
        precision=_PRECISION[precision],
    )


def primary_window_days() -> int:
    """The study's 3-month window in days: 3 x 365.25/12 = 91.3, taken as 91 days."""
    months = load_evidence().cohort.primary_resistance_window_months
    return int(months * DAYS_PER_MONTH)


def _medication_start(resource: dict[str, Any]) -> tuple[FhirDate | None, str | None]:
    kind = resource.get("resourceType")
    options: list[tuple[FhirDate, str]] = []
    if kind == "MedicationRequest":
        authored = parse_fhir_date(resource.get("authoredOn"))
        if authored:
            options.append((authored, "authoredOn"))
        for i, dosage in enumerate(as_list(resource.get("dosageInstruction"))):
            timing = as_dict(as_dict(dosage).get("timing"))
            bounds = as_dict(as_dict(timing.get("repeat")).get("boundsPeriod"))
            start = parse_fhir_date(bounds.get("start"))
            if start:
                options.append((start, f"dosageInstruction[{i}].timing.repeat.boundsPeriod.start"))
            for event in as_list(timing.get("event")):
                parsed = parse_fhir_date(event)
                if parsed:
                    options.append((parsed, f"dosageInstruction[{i}].timing.event"))
    else:
        when = effective_date(resource)
        if when:
            options.append(when)
    if not options:
        return None, None
    return min(options, key=lambda o: (o[0].earliest, o[0].latest))


def _exposures(record: PatientRecord, as_of: date | None) -> tuple[list[DrugExposure], list[str]]:
    terminology = record.terminology
    out: list[DrugExposure] = []
    skipped: list[str] = []
    for resource in record.of_type(*MEDICATION_HOLDERS):
        matched = terminology.match_drug(medication_concept(resource, record.by_ref))
        if matched is None:
            continue
        name, coding = matched
        rid = f"{resource.get('resourceType')}/{resource.get('id')}"
        status = text(resource.get("status"))
        if status in NOT_TAKEN:
            skipped.append(
                Note(
                    "history.skipped_status",
                    "%(ref)s (%(drug)s) status %(status)s",
                    ref=rid,
                    drug=Drug(name),
                    status=str(status),
                )
            )
            continue
        if resource.get("resourceType") == "MedicationRequest" and resource.get("intent") in ("proposal", "plan"):
            skipped.append(
                Note(
                    "history.skipped_intent",
                    "%(ref)s (%(drug)s) intent %(intent)s",
                    ref=rid,
                    drug=Drug(name),
                    intent=str(resource.get("intent")),
                )
            )
            continue
        when, source = _medication_start(resource)
        if when is not None and as_of is not None and when.earliest > as_of:
            skipped.append(
                Note(
                    "history.skipped_later",
                    "%(ref)s (%(drug)s) starts after %(date)s",
                    ref=rid,
                    drug=Drug(name),
                    date=as_of.isoformat(),
                )
            )
            continue
        out.append(
            DrugExposure(
                drug=name,
                drug_class=terminology.drugs[name].drug_class,
                start=when.earliest if when and when.is_exact else None,
                start_text=when.text if when else None,
                start_precision=when.precision if when else None,
                checkpoint=terminology.drugs[name].checkpoint,
                provenance=provenance(resource, when=when, when_source=source, value=name, coding=coding),
            )
        )
    return out, skipped


# Words that say a drug was stopped because the patient could not tolerate it, in a status reason
# or an AdverseEvent; coded reasons come from the terminology's stop_reasons.toxicity.
_TOXICITY_WORDS = re.compile(r"toxicit|intoleran|not tolerated|adverse|side[- ]effect|hand[- ]foot")


def _toxicity_reason(concepts: list[Any], terminology: Terminology) -> CodingRef | None:
    """The status-reason coding (or text) that says 'stopped for toxicity', if any."""
    for concept in concepts:
        matched = terminology.match("stop_reasons", concept, keys=("toxicity",))
        if matched is not None:
            return matched[1]
        concept = as_dict(concept)
        for words in [text(concept.get("text"))] + [
            text(as_dict(c).get("display")) for c in as_list(concept.get("coding"))
        ]:
            if words and _TOXICITY_WORDS.search(words.lower()):
                return CodingRef(display=words)
    return None


def _sorafenib_toxicity(record: PatientRecord, sorafenib: list[DrugExposure], as_of: date | None) -> Feature[Any]:
    """Sorafenib stopped for toxicity: a sorafenib record whose statusReason says so, or an actual
    AdverseEvent whose suspected entity is sorafenib (the study excluded such switches)."""
    terminology, by_ref = record.terminology, record.by_ref
    refs = {f"{e.provenance.resource_type}/{e.provenance.resource_id}" for e in sorafenib}
    for resource in record.of_type(*MEDICATION_HOLDERS, "AdverseEvent"):
        kind = resource.get("resourceType")
        rid = f"{kind}/{resource.get('id')}"
        if rid in refs:
            reasons = resource.get("statusReason")
            coding = _toxicity_reason(reasons if isinstance(reasons, list) else [reasons], terminology)
            if coding is not None:
                prov = provenance(resource, value=text(resource.get("status")), coding=coding)
                return BoolFeature(
                    value=True,
                    provenance=prov,
                    note=Note(
                        "history.status_reason",
                        "sorafenib %(ref)s status reason: %(reason)s",
                        ref=rid,
                        reason=str(coding.display or coding.code),
                    ),
                )
        elif kind == "AdverseEvent" and resource.get("actuality", "actual") == "actual":
            when = parse_fhir_date(resource.get("date"))
            if when is not None and as_of is not None and when.earliest > as_of:
                continue
            for suspect in as_list(resource.get("suspectEntity")):
                instance = as_dict(as_dict(suspect).get("instance"))
                key = reference_key(instance)
                target = by_ref.get(key) if key else None
                concept = (
                    target.get("code")
                    if target and target.get("resourceType") == "Medication"
                    else medication_concept(target, by_ref)
                    if target
                    else {"text": text(instance.get("display"))}
                )
                if key in refs or (terminology.match_drug(concept) or ("",))[0] == "sorafenib":
                    event = as_dict(resource.get("event"))
                    label = text(event.get("text")) or next(
                        (
                            text(as_dict(c).get("display"))
                            for c in as_list(event.get("coding"))
                            if as_dict(c).get("display")
                        ),
                        None,
                    )
                    prov = provenance(resource, when=when, when_source="date", value=label or "adverse event")
                    return BoolFeature(
                        value=True,
                        provenance=prov,
                        note=Note(
                            "history.adverse_event",
                            "%(ref)s: %(event)s with %(drug)s suspected",
                            ref=rid,
                            event=label or Note("history.an_adverse_event", "adverse event"),
                            drug=Drug("sorafenib"),
                        ),
                    )
    return BoolFeature(
        missing=MissingReason.not_found,
        note=Note("history.no_toxicity_stop", "no sorafenib stop for toxicity recorded"),
    )


def _progression_events(record: PatientRecord, as_of: date | None) -> list[tuple[FhirDate, Provenance]]:
    terminology = record.terminology
    status_coded = [coded.resource for coded in record.observations.matching("progression", ("status_codes",))]
    events = []
    for resource in record.in_input_order(status_coded + record.of_type("DiagnosticReport")):
        kind = resource.get("resourceType")
        if kind == "Observation":
            if text(resource.get("status")) not in FINAL_STATUSES:
                continue
            concept = resource.get("valueCodeableConcept")
            matched = terminology.match("progression", concept, keys=("progression_values",))
            coding = matched[1] if matched else None
            if coding is None:
                words = " ".join(
                    [text(as_dict(concept).get("text")) or ""]
                    + [text(as_dict(c).get("display")) or "" for c in as_list(as_dict(concept).get("coding"))]
                ).lower()
                if "progressive disease" in words or "progression" in words:
                    coding = CodingRef(display=words.strip())
            if coding is None:
                continue
            when, source = record.observation_date(resource)
        else:  # a DiagnosticReport
            if text(resource.get("status")) not in REPORT_FINAL_STATUSES:
                continue
            coding = None
            for concept in as_list(resource.get("conclusionCode")):
                matched = terminology.match("progression", concept, keys=("progression_values",))
                if matched:
                    coding = matched[1]
                    break
            if coding is None:
                continue
            found = effective_date(resource)
            when, source = found if found else (None, None)
        if when is None or (as_of is not None and when.earliest > as_of):
            continue
        events.append((when, provenance(resource, when=when, when_source=source, value="progression", coding=coding)))
    events.sort(key=lambda e: (e[0].earliest, e[0].latest))
    return events


def map_treatment_history(
    resources: Iterable[dict[str, Any]] | Any, *, terminology: Terminology, as_of: date | None = None
) -> TreatmentHistory:
    """Sorafenib start, other TKI / PD-1 exposures, radiological progressions and the
    resistance type (primary: first progression <= 91 days after the sorafenib start).
    `resources` may be a PatientRecord shared with map_patient_features."""
    record = patient_record(resources, terminology)
    window = primary_window_days()
    exposures, skipped = _exposures(record, as_of)
    by_class: dict[str, list[DrugExposure]] = {"sorafenib": [], "tki": [], "pd1_inhibitor": [], "other_systemic": []}
    for exposure in exposures:
        by_class[exposure.drug_class].append(exposure)
    for group in by_class.values():
        group.sort(key=lambda e: (e.start_text is None, e.start_text or ""))
    events = _progression_events(record, as_of)
    toxicity = _sorafenib_toxicity(record, by_class["sorafenib"], as_of)
    return TreatmentHistory(
        sorafenib_exposures=by_class["sorafenib"],
        other_tki_exposures=by_class["tki"],
        pd1_exposures=by_class["pd1_inhibitor"],
        other_systemic_exposures=by_class["other_systemic"],
        progressions=[
            ProgressionEvent(date=w.earliest, date_text=w.text, date_precision=w.precision, provenance=p)
            for w, p in events
        ],
        primary_window_days=window,
        sorafenib_toxicity=toxicity,
        operation_outcomes=record.operation_outcomes,
        **_derive_resistance(by_class["sorafenib"], events, skipped, window),
    )


def _derive_resistance(
    sorafenib: list[DrugExposure],
    events: list[tuple[FhirDate, Provenance]],
    skipped: list[str],
    window: int,
) -> dict[str, Any]:
    """TreatmentHistory's sorafenib_start, first_progression_after_sorafenib, months_to_progression,
    progression_day_range and resistance_type, each built as the Feature type the model declares (validated once)."""

    def missing_all(reason: MissingReason, note: str, prov: Provenance | None = None) -> dict[str, Feature[Any]]:
        return {
            "first_progression_after_sorafenib": DateFeature(missing=reason, provenance=prov, note=note),
            "resistance_type": ResistanceFeature(missing=reason, provenance=prov, note=note),
            "months_to_progression": FloatFeature(missing=reason, provenance=prov, note=note),
            "days_to_progression": IntFeature(missing=reason, provenance=prov, note=note),
            "sorafenib_failure": BoolFeature(missing=reason, provenance=prov, note=note),
        }

    if not sorafenib:
        note = with_skipped(Note("history.no_sorafenib", "no sorafenib exposure found"), skipped)
        start = DateFeature(missing=MissingReason.no_sorafenib, note=note)
        return {"sorafenib_start": start, **missing_all(MissingReason.no_sorafenib, note)}
    parsed = [(parse_fhir_date(e.start_text), e) for e in sorafenib if e.start_text]
    dated = [(w, e) for w, e in parsed if w is not None]
    if not dated:
        note = Note(
            "history.no_start_date",
            "%(drug)s recorded without any start date: %(refs)s",
            drug=Drug("sorafenib"),
            refs=", ".join(f"{e.provenance.resource_type}/{e.provenance.resource_id}" for e in sorafenib),
        )
        start = DateFeature(missing=MissingReason.no_date, provenance=sorafenib[0].provenance, note=note)
        return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, sorafenib[0].provenance)}
    # The true first start lies between the earliest possible and the earliest certain date.
    first_when, first = min(dated, key=lambda d: (d[0].earliest, d[0].latest))
    start_low = first_when.earliest
    start_high = min(w.latest for w, _ in dated)
    start_desc = Note(
        "history.start",
        "sorafenib start %(when)s (%(ref)s)",
        when=first_when.text,
        ref=f"{first.provenance.resource_type}/{first.provenance.resource_id}",
    )
    if start_low == start_high:
        start = DateFeature(value=start_low, provenance=first.provenance, note=start_desc)
    else:
        start = DateFeature(
            missing=MissingReason.ambiguous,
            provenance=first.provenance,
            note=_imprecise(start_desc, first_when.precision),
        )
    after = [(w, p) for w, p in events if w.latest > start_low]
    if not after:
        if events:
            w, p = events[-1]
            note = Note(
                "history.progression_before_start",
                "progression recorded only on or before the %(start)s (last %(when)s)",
                start=start_desc,
                when=w.text,
            )
            return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, p)}
        note = Note(
            "history.no_progression", "no radiological progression recorded after the %(start)s", start=start_desc
        )
        return {"sorafenib_start": start, **missing_all(MissingReason.no_progression, note)}
    prog_when, prog = min(after, key=lambda e: (e[0].earliest, e[0].latest))
    prog_desc = Note(
        "history.first_progression",
        "first progression %(when)s (%(ref)s)",
        when=prog_when.text,
        ref=f"{prog.resource_type}/{prog.resource_id}",
    )
    if prog_when.earliest <= start_high:
        note = Note(
            "history.order_unknown",
            "cannot tell whether the %(progression)s came after the %(start)s",
            progression=prog_desc,
            start=start_desc,
        )
        return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, prog)}
    if prog_when.is_exact:
        first_progression = DateFeature(value=prog_when.earliest, provenance=prog, note=prog_desc)
    else:
        first_progression = DateFeature(
            missing=MissingReason.ambiguous,
            provenance=prog,
            note=_imprecise(prog_desc, prog_when.precision),
        )
    days_low = (prog_when.earliest - start_high).days
    days_high = (prog_when.latest - start_low).days
    both = Note("history.both", "%(start)s; %(progression)s", start=start_desc, progression=prog_desc)
    if days_low == days_high:
        months = FloatFeature(
            value=round(days_low / DAYS_PER_MONTH, 1),
            provenance=prog,
            note=Note("history.days", "%(days)s days; %(both)s", days=days_low, both=both),
        )
        days = IntFeature(value=days_low, provenance=prog, note=months.note)
    else:
        months = FloatFeature(
            missing=MissingReason.ambiguous,
            provenance=prog,
            note=Note(
                "history.days_between",
                "between %(low)s and %(high)s days; %(both)s",
                low=days_low,
                high=days_high,
                both=both,
            ),
        )
        days = IntFeature(missing=MissingReason.ambiguous, provenance=prog, note=months.note)
    exact = str(days_low) if days_low == days_high else ""
    if days_high <= window:
        resistance = ResistanceFeature(
            value="primary",
            provenance=prog,
            note=Note(
                "history.primary",
                "progression %(days)s days after start (<= %(window)s); %(both)s",
                days=exact or f"<= {days_high}",
                window=window,
                both=both,
            ),
        )
    elif days_low > window:
        resistance = ResistanceFeature(
            value="secondary",
            provenance=prog,
            note=Note(
                "history.secondary",
                "progression %(days)s days after start (> %(window)s); %(both)s",
                days=exact or f">= {days_low}",
                window=window,
                both=both,
            ),
        )
    else:
        resistance = ResistanceFeature(
            missing=MissingReason.ambiguous,
            provenance=prog,
            note=Note(
                "history.window_undecidable",
                "progression between %(low)s and %(high)s days after start; "
                "the %(window)s-day window is undecidable; %(both)s",
                low=days_low,
                high=days_high,
                window=window,
                both=both,
            ),
        )
    return {
        "sorafenib_start": start,
        "first_progression_after_sorafenib": first_progression,
        "months_to_progression": months,
        "days_to_progression": days,
        "progression_day_range": (days_low, days_high),
        "resistance_type": resistance,
        "sorafenib_failure": BoolFeature(
            value=True,
            provenance=prog,
            note=Note("history.failure", "radiological progression after sorafenib: %(both)s", both=both),
        ),
    }
