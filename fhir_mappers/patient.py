"""FHIR resources -> PatientFeatures (labs, imaging, conditions) and TreatmentHistory.

Bad resources never raise: they become candidates with a reason, and a feature without a usable
candidate is missing with the reason of the most relevant one (see _common.select_recent).
Only valueQuantity is validated with the fhir.resources R4B model: validating whole resources
would reject real EHR data for harmless extras, and would cost ~0.5 ms a resource.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache, partial
from typing import Any, NamedTuple

from fhir.resources.R4B.quantity import Quantity
from pydantic import ValidationError

from fhir_mappers._common import (
    ERROR_STATUSES,
    FINAL_STATUSES,
    MEDICATION_HOLDERS,
    REPORT_FINAL_STATUSES,
    Assessment,
    Candidate,
    as_dict,
    as_list,
    collect,
    medication_concept,
    missing_like,
    missing_recent,
    provenance,
    recent_same_day,
    reference_key,
    select_recent,
    text,
)
from fhir_mappers.features import (
    AetiologyFeature,
    BclcFeature,
    BoolFeature,
    ChildPughFeature,
    ClinicalFinding,
    CodingRef,
    DateFeature,
    DrugExposure,
    Feature,
    FloatFeature,
    IntFeature,
    LabFeature,
    LabValue,
    MissingReason,
    PatientFeatures,
    ProgressionEvent,
    Provenance,
    ResistanceFeature,
    TreatmentHistory,
)
from fhir_mappers.fhirdates import FhirDate, effective_date, parse_fhir_date
from fhir_mappers.terminology import CodeIndex, Terminology, coding_ref
from fhir_mappers.units import MODEL_UNITS, convert, implausible
from hcc_evidence import load_evidence

LAB_LABELS = {
    "afp": "AFP",
    "alt": "ALT",
    "ast": "AST",
    "bilirubin": "total bilirubin",
    "albumin": "albumin",
    "platelets": "platelet count",
    "inr": "INR",
}
COMPARATORS = frozenset({"<", "<=", ">=", ">"})
DAYS_PER_MONTH = 365.25 / 12
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
SKIP_VERIFICATION = frozenset({"refuted", "entered-in-error"})


# --------------------------------------------------------------------------- quantities


class _PlainQuantity(NamedTuple):
    value: float
    comparator: str | None
    unit: str | None
    system: str | None
    code: str | None


_PLAIN_QUANTITY_KEYS = frozenset(_PlainQuantity._fields)
_STR_OR_NONE = frozenset({str, type(None)})
_NUMBER = frozenset({int, float})
_FHIR_TOKEN = re.compile(r"^[^\s]+( [^\s]+)*$")  # FHIR code (unit and comparator checked alike)
_FHIR_URI = re.compile(r"^\S+$")


def _plain_quantity(raw: dict) -> _PlainQuantity | None:
    """The everyday valueQuantity (a finite number, a known comparator, tidy strings) without the
    cost of a fhir.resources model (~60 µs each, 20+ per call); None sends it to full validation."""
    if not raw.keys() <= _PLAIN_QUANTITY_KEYS:
        return None
    value = raw.get("value")
    if type(value) not in _NUMBER or not math.isfinite(value):
        return None
    comparator, unit, system, code = raw.get("comparator"), raw.get("unit"), raw.get("system"), raw.get("code")
    if (
        type(comparator) in _STR_OR_NONE
        and type(unit) in _STR_OR_NONE
        and type(system) in _STR_OR_NONE
        and type(code) in _STR_OR_NONE
        and _tidy(comparator, unit, system, code)
    ):
        return _PlainQuantity(value, comparator, unit, system, code)
    return None


@lru_cache(maxsize=2048)
def _tidy(comparator: str | None, unit: str | None, system: str | None, code: str | None) -> bool:
    """Well-formed strings and a known comparator; cached because every call meets the same units."""
    patterns = (_FHIR_TOKEN, _FHIR_TOKEN, _FHIR_URI, _FHIR_TOKEN)
    if not all(s is None or p.match(s) for s, p in zip((comparator, unit, system, code), patterns, strict=True)):
        return False
    return comparator is None or comparator in COMPARATORS


def _quantity(feature: str, resource: dict, raw: object) -> tuple[LabValue | None, MissingReason | None, str, dict]:
    """valueQuantity -> value in the model unit, or why not. Also returns the raw dict."""
    label = LAB_LABELS.get(feature) or feature.replace("_", " ")
    if not isinstance(raw, dict):
        return None, MissingReason.invalid, f"{label} has no valueQuantity", {}
    if raw.get("value") is not None and type(raw["value"]) not in _NUMBER:  # FHIR JSON: never "80"
        return None, MissingReason.invalid, f"{label} value {raw.get('value')!r} is not a JSON number", raw
    quantity = _plain_quantity(raw)
    if quantity is None:  # anything unusual gets the full FHIR validation and its error message
        try:
            quantity = Quantity.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return None, MissingReason.invalid, f"{label} valueQuantity.{where}: {first.get('msg')}", raw
    if quantity.value is None:
        return None, MissingReason.invalid, f"{label} valueQuantity has no value", raw
    number = float(quantity.value)
    if not math.isfinite(number):
        return None, MissingReason.invalid, f"{label} value {raw.get('value')!r} is not finite", raw
    comparator = quantity.comparator
    if comparator is not None and comparator not in COMPARATORS:
        return None, MissingReason.invalid, f"{label} comparator {comparator!r} is not a FHIR comparator", raw
    converted = convert(feature, number, quantity.code, quantity.system, quantity.unit)
    if converted is None:
        unit = quantity.unit or quantity.code or "(none)"
        return (
            None,
            MissingReason.unit_unknown,
            f"{label} unit {unit!r} is not a known unit for {label} (model unit {MODEL_UNITS[feature]})",
            raw,
        )
    value, _ = converted
    impossible = implausible(feature, value)
    if impossible is not None:
        return None, MissingReason.implausible, f"{label} {impossible}; not used", raw
    return LabValue(value=round(value, 6), unit=MODEL_UNITS[feature], comparator=comparator), None, "", raw


def _report_dates(resources: list[dict]) -> dict[str, tuple[FhirDate, str, str | None]]:
    """Observation 'Type/id' -> (date, source, report status) from the DiagnosticReport that
    lists it in `result`, for Observations that carry no date of their own."""
    out: dict[str, tuple[FhirDate, str, str | None]] = {}
    for report in resources:
        if report.get("resourceType") != "DiagnosticReport":
            continue
        when = effective_date(report)
        if when is None:
            continue
        for ref in as_list(report.get("result")):
            key = reference_key(ref)
            if key:
                out.setdefault(
                    key, (when[0], f"DiagnosticReport/{report.get('id')}.{when[1]}", text(report.get("status")))
                )
    return out


def _observation_date(obs: dict, report_dates: dict) -> tuple[FhirDate | None, str | None]:
    when = effective_date(obs)
    if when is not None:
        return when
    linked = report_dates.get(f"Observation/{obs.get('id')}")
    if linked is not None:
        return linked[0], linked[1]
    return None, None


def _status_reason(resource: dict, label: str) -> tuple[MissingReason | None, str]:
    status = text(resource.get("status"))
    if status in FINAL_STATUSES:
        return None, ""
    rid = f"{resource.get('resourceType')}/{resource.get('id')}"
    if status in ERROR_STATUSES:
        return MissingReason.entered_in_error, f"{label} in {rid} has status {status}; ignored"
    return MissingReason.not_final, f"{label} in {rid} has status {status!r}, not final/amended/corrected"


def _absent_reason(resource: dict, label: str) -> tuple[MissingReason | None, str]:
    absent = resource.get("dataAbsentReason")
    if absent is None:
        return None, ""
    concept = as_dict(absent)
    codes = [text(c.get("code")) for c in as_list(concept.get("coding")) if isinstance(c, dict)]
    why = text(concept.get("text")) or ", ".join(c for c in codes if c) or "no reason given"
    return MissingReason.data_absent, f"{label}: data absent ({why})"


# --------------------------------------------------------------------------- labs


def _unusable_because(obs: dict, label: str) -> tuple[MissingReason | None, str]:
    """Why an Observation cannot give a value: its status first, then a dataAbsentReason."""
    reason, note = _status_reason(obs, label)
    if reason is None:
        reason, note = _absent_reason(obs, label)
    return reason, note


def _lab_candidates(observations: CodeIndex, report_dates: dict) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {key: [] for key in LAB_LABELS}
    for _, obs, key, raw_coding in observations.matching("labs"):
        when, source = _observation_date(obs, report_dates)
        out[key].append(Candidate(when, partial(_lab_assessment, obs, key, raw_coding, when, source)))
    return out


def _lab_assessment(obs: dict, key: str, raw_coding: dict, when: FhirDate | None, source: str | None) -> Assessment:
    """The lab value in the model unit or why not, with provenance (and its CodingRef): only for
    the candidates select_recent looks at."""
    raw = obs.get("valueQuantity")
    raw_q = as_dict(raw)
    prov = provenance(
        obs,
        when=when,
        when_source=source,
        value=raw_q.get("value") if raw_q else obs.get("valueString"),
        unit=text(raw_q.get("unit")) or text(raw_q.get("code")),
        comparator=text(raw_q.get("comparator")),
        coding=coding_ref(raw_coding),
    )
    reason, note = _unusable_because(obs, LAB_LABELS[key])
    value = None
    if reason is None:
        value, reason, note, _ = _quantity(key, obs, raw)
    return Assessment(prov, value, reason, note)


def _over(source: Feature, threshold: float, name: str, unit: str) -> Feature:
    """Binary 'value > threshold' honouring the comparator; missing if undecidable."""
    if source.value is None:
        return missing_like(source, f"{name} needs the value", BoolFeature)
    lab: LabValue = source.value
    v, comp = lab.value, lab.comparator
    shown = f"{comp or ''}{v:g} {lab.unit}"
    if comp is None:
        result: bool | None = v > threshold
    elif comp == ">":
        result = True if v >= threshold else None
    elif comp == ">=":
        result = True if v > threshold else None
    elif comp == "<":
        result = False if v <= threshold else None
    else:  # "<="
        result = False if v <= threshold else None
    if result is None:
        return BoolFeature(
            missing=MissingReason.undecidable,
            provenance=source.provenance,
            note=f"{shown} cannot tell whether the value is above {threshold:g} {unit}",
        )
    return BoolFeature(value=result, provenance=source.provenance, note=f"{shown} vs threshold {threshold:g} {unit}")


# --------------------------------------------------------------------------- imaging


def _tumour_sizes(observations: CodeIndex, terminology: Terminology, report_dates: dict) -> list[Candidate]:
    out = []
    for _, obs, _, raw_coding in observations.matching("imaging", ("tumour_size",)):
        when, source = _observation_date(obs, report_dates)
        reason, note = _unusable_because(obs, "tumour size")
        quantities = []
        for component in as_list(obs.get("component")):
            if terminology.match("imaging", as_dict(component).get("code"), keys=("tumour_size_longest",)):
                quantities.append(as_dict(component).get("valueQuantity"))
        if not quantities and "valueQuantity" in obs:
            quantities.append(obs.get("valueQuantity"))
        value, raw_q = None, {}
        if reason is None:
            if not quantities:
                reason, note = MissingReason.invalid, f"tumour size in Observation/{obs.get('id')} has no diameter"
            for q in quantities:
                lab, why, why_note, raw = _quantity("tumour_size", obs, q)
                if lab is not None and (value is None or lab.value > value):
                    value, raw_q, reason, note = lab.value, raw, None, ""
                elif value is None:
                    reason, note, raw_q = why, why_note, raw
        raw_q = raw_q or as_dict(quantities[0] if quantities else None)
        prov = provenance(
            obs,
            when=when,
            when_source=source,
            value=raw_q.get("value"),
            unit=text(raw_q.get("unit")) or text(raw_q.get("code")),
            comparator=text(raw_q.get("comparator")),
            coding=coding_ref(raw_coding),
        )
        out.append(Candidate.known(when, prov, value, reason, note))
    return out


def _tumour_counts(observations: CodeIndex, report_dates: dict) -> list[Candidate]:
    out = []
    for _, obs, _, raw_coding in observations.matching("imaging", ("tumour_count",)):
        when, source = _observation_date(obs, report_dates)
        reason, note = _unusable_because(obs, "tumour count")
        raw: object = obs.get("valueInteger")
        comparator = None
        if raw is None:
            q = as_dict(obs.get("valueQuantity"))
            raw, comparator = q.get("value"), text(q.get("comparator"))
        value = None
        if reason is None:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or raw != int(raw):
                reason, note = MissingReason.invalid, f"tumour count {raw!r} is not a whole number"
            elif comparator is not None and comparator not in (">", ">="):
                reason, note = MissingReason.undecidable, f"tumour count {comparator}{raw} is not a count"
            else:
                value = (int(raw), comparator)
        prov = provenance(
            obs, when=when, when_source=source, value=raw, comparator=comparator, coding=coding_ref(raw_coding)
        )
        out.append(Candidate.known(when, prov, value, reason, note))
    return out


# --------------------------------------------------------------------------- findings


def _finding_value(obs: dict, terminology: Terminology) -> bool | None:
    if isinstance(obs.get("valueBoolean"), bool):
        return obs["valueBoolean"]
    concept = obs.get("valueCodeableConcept")
    if concept is not None:
        answer = terminology.match("finding_values", concept)
        if answer is not None:
            return answer[0] == "present"
        words = " ".join(
            [text(as_dict(concept).get("text")) or ""]
            + [text(as_dict(c).get("display")) or "" for c in as_list(as_dict(concept).get("coding"))]
        ).lower()
        if re.search(r"\b(absent|not present|no|negative|none)\b", words):
            return False
        if re.search(r"\b(present|yes|positive|detected)\b", words):
            return True
        return None
    text_value = text(obs.get("valueString"))
    if text_value is not None:
        lowered = text_value.strip().lower()
        if lowered in {"yes", "present", "positive", "true"}:
            return True
        if lowered in {"no", "absent", "negative", "false", "none"}:
            return False
        return None
    return True  # the coded finding itself, without an answer, asserts it


def _condition_usable(condition: dict) -> tuple[bool, str]:
    verification = _status_code(condition.get("verificationStatus"))
    if verification in SKIP_VERIFICATION:
        return False, f"verificationStatus {verification}"
    clinical = _status_code(condition.get("clinicalStatus"))
    if clinical is not None and clinical not in ACTIVE_CLINICAL:
        return False, f"clinicalStatus {clinical}"
    return True, ""


def _status_code(concept: object) -> str | None:
    for coding in as_list(as_dict(concept).get("coding")):
        code = text(as_dict(coding).get("code"))
        if code:
            return code
    return None


def _condition_date(condition: dict) -> tuple[FhirDate | None, str | None]:
    for element in ("onsetDateTime", "recordedDate"):
        parsed = parse_fhir_date(condition.get(element))
        if parsed is not None:
            return parsed, element
    period = as_dict(condition.get("onsetPeriod"))
    parsed = parse_fhir_date(period.get("start"))
    return (parsed, "onsetPeriod.start") if parsed else (None, None)


def _finding(
    key: str,
    label: str,
    conditions: CodeIndex,
    observations: CodeIndex,
    terminology: Terminology,
    report_dates: dict,
    as_of: date,
    lookback: int,
) -> Feature:
    skipped: list[str] = []
    for _, condition, _, raw_coding in conditions.matching("findings", (key,)):
        usable, why = _condition_usable(condition)
        when, source = _condition_date(condition)
        if not usable:
            skipped.append(f"Condition/{condition.get('id')} ({why})")
            continue
        if when is not None and when.earliest > as_of:
            skipped.append(f"Condition/{condition.get('id')} (dated after the order)")
            continue
        prov = provenance(condition, when=when, when_source=source, value=True, coding=coding_ref(raw_coding))
        return BoolFeature(value=True, provenance=prov, note=f"{label}: active Condition/{condition.get('id')}")
    by_code = {c.position: c for c in observations.matching("findings", (key,))}
    by_value = {c.position: c for c in observations.matching("findings", (key,), "valueCodeableConcept")}
    candidates = []
    for position in sorted(by_code.keys() | by_value.keys()):
        obs = (by_code.get(position) or by_value[position]).resource
        when, source = _observation_date(obs, report_dates)
        reason, note = _unusable_because(obs, label)
        value = True if position in by_value else _finding_value(obs, terminology)
        if reason is None and value is None:
            reason, note = MissingReason.invalid, f"{label}: answer in Observation/{obs.get('id')} not understood"
        coding = (by_value.get(position) or by_code[position]).coding
        prov = provenance(obs, when=when, when_source=source, value=value, coding=coding)
        candidates.append(Candidate.known(when, prov, value, reason, note))
    feature = select_recent(label, candidates, as_of, lookback, BoolFeature)
    if feature.value is None and skipped and feature.missing is MissingReason.not_found:
        feature.note = f"{label}: only " + "; ".join(skipped)
    return feature


# --------------------------------------------------------------------------- conditions


def _conditions_matching(
    key: str, conditions: CodeIndex, as_of: date
) -> tuple[list[tuple[dict, CodingRef]], list[str]]:
    found, skipped = [], []
    for _, condition, _, raw_coding in conditions.matching("conditions", (key,)):
        usable, why = _condition_usable(condition)
        when, _ = _condition_date(condition)
        if not usable:
            skipped.append(f"Condition/{condition.get('id')} {why}")
        elif when is not None and when.earliest > as_of:
            skipped.append(f"Condition/{condition.get('id')} dated {when.text}, after the order")
        else:
            found.append((condition, coding_ref(raw_coding)))
    return found, skipped


def _condition_feature(key: str, label: str, conditions: CodeIndex, as_of: date) -> Feature:
    found, skipped = _conditions_matching(key, conditions, as_of)
    if found:
        condition, coding = found[0]
        when, source = _condition_date(condition)
        prov = provenance(condition, when=when, when_source=source, value=True, coding=coding)
        return BoolFeature(value=True, provenance=prov, note=f"{label}: Condition/{condition.get('id')}")
    note = f"no {label} Condition found"
    if skipped:
        note += "; skipped: " + "; ".join(skipped)
    return BoolFeature(missing=MissingReason.not_found, note=note)


def _aetiology(conditions: CodeIndex, as_of: date) -> Feature:
    """HBV and/or HCV when coded; "other" when only a non-viral liver disease is (the study
    included HBV/HCV only); missing when neither is."""
    hbv, _ = _conditions_matching("hbv", conditions, as_of)
    hcv, _ = _conditions_matching("hcv", conditions, as_of)
    if not hbv and not hcv:
        other, _ = _conditions_matching("non_viral_liver_disease", conditions, as_of)
        if other:
            condition, coding = other[0]
            when, source = _condition_date(condition)
            prov = provenance(condition, when=when, when_source=source, value="other", coding=coding)
            return AetiologyFeature(
                value="other",
                provenance=prov,
                note=f"non-viral liver disease Condition/{condition.get('id')} and no HBV or HCV Condition",
            )
        return AetiologyFeature(missing=MissingReason.not_found, note="no HBV or HCV Condition found")
    value = "hbv_hcv" if hbv and hcv else "hbv" if hbv else "hcv"
    condition, coding = (hbv or hcv)[0]
    when, source = _condition_date(condition)
    prov = provenance(condition, when=when, when_source=source, value=value, coding=coding)
    ids = [f"Condition/{c.get('id')}" for c, _ in hbv + hcv]
    return AetiologyFeature(value=value, provenance=prov, note=f"aetiology from {', '.join(ids)}")


# --------------------------------------------------------------------------- staging

SCALES = ("child_pugh", "bclc")
_SCALE_FEATURE = {"child_pugh": ChildPughFeature, "bclc": BclcFeature}
_CHILD_PUGH_TEXT = re.compile(r"(?:child[-\s]*(?:turcotte[-\s]*)?pugh)?\s*(?:class|grade|score)?\s*([abc])\s*\d{0,2}")
_BCLC_TEXT = re.compile(r"(?:bclc|barcelona(?: clinic liver cancer)?)?\s*(?:stage)?\s*([0abcd])")


def _stage_from(
    concept: object, text_value: object, terminology: Terminology, scale: str
) -> tuple[str | None, CodingRef | None]:
    letters = ("a", "b", "c") if scale == "child_pugh" else ("0", "a", "b", "c", "d")
    matched = terminology.match("staging", concept, keys=[f"{scale}_{x}" for x in letters])
    if matched is not None:
        return matched[0].rsplit("_", 1)[1].upper(), matched[1]
    pattern = _CHILD_PUGH_TEXT if scale == "child_pugh" else _BCLC_TEXT
    texts = [text(text_value)] if text_value is not None else []
    texts.append(text(as_dict(concept).get("text")))
    texts += [text(as_dict(c).get("display")) for c in as_list(as_dict(concept).get("coding"))]
    texts += [text(as_dict(c).get("code")) for c in as_list(as_dict(concept).get("coding"))]
    for t in texts:
        if t:
            m = pattern.fullmatch(t.strip().lower())
            if m:
                return m.group(1).upper(), CodingRef(display=t)
    return None, None


def _labels(concept: object) -> tuple[str, ...]:
    """The concept's text, then each coding's display: where a scale is named in words."""
    if not isinstance(concept, dict):
        return ()
    label = concept.get("text")
    labels = [label] if isinstance(label, str) and label else []
    codings = concept.get("coding")
    if isinstance(codings, list):
        for coding in codings:  # a loop, not generators: every Observation's code comes here
            label = coding.get("display") if isinstance(coding, dict) else None
            if isinstance(label, str) and label:
                labels.append(label)
    return tuple(labels)


@lru_cache(maxsize=4096)
def _named_in(labels: tuple[str, ...], scale: str) -> CodingRef | None:
    """The first label naming the scale ("Child-Pugh score", "Barcelona stage"), for codes the
    terminology file does not map. Cached: every call reads the same code labels (a CodingRef is
    frozen, so it can be shared)."""
    words = ("child", "pugh") if scale == "child_pugh" else ("bclc",)
    alt = ("barcelona",)
    for label in labels:
        if all(w in label.lower() for w in words) or (scale == "bclc" and any(w in label.lower() for w in alt)):
            return CodingRef(display=label)
    return None


def _names_scale(concept: object, terminology: Terminology, scale: str) -> CodingRef | None:
    matched = terminology.match("staging", concept, keys=(scale,))
    return matched[1] if matched is not None else _named_in(_labels(concept), scale)


def _naming_scales(observations: CodeIndex, raw: list[dict]) -> dict[str, list[tuple[dict, CodingRef]]]:
    """Scale -> the Observations whose code names it (by code, else in words), in order: the
    code labels are read once for both scales."""
    by_code = {scale: {c.position: c.coding for c in observations.matching("staging", (scale,))} for scale in SCALES}
    coded = {position for positions in by_code.values() for position in positions}
    out: dict[str, list[tuple[dict, CodingRef]]] = {scale: [] for scale in SCALES}
    for position, obs in enumerate(raw):
        labels = _labels(obs.get("code"))
        if not labels and position not in coded:
            continue
        for scale in SCALES:
            named = by_code[scale].get(position)
            if named is None and labels:
                named = _named_in(labels, scale)
            if named is not None:
                out[scale].append((obs, named))
    return out


def _stage(
    scale: str,
    label: str,
    named_by: list[tuple[dict, CodingRef]],
    conditions: list[dict],
    terminology: Terminology,
    report_dates: dict,
    as_of: date,
    lookback: int,
) -> Feature:
    candidates = []
    for obs, named in named_by:
        when, source = _observation_date(obs, report_dates)
        reason, note = _unusable_because(obs, label)
        value, coding = _stage_from(obs.get("valueCodeableConcept"), obs.get("valueString"), terminology, scale)
        if reason is None and value is None:
            reason, note = MissingReason.invalid, f"{label} value in Observation/{obs.get('id')} not understood"
        prov = provenance(obs, when=when, when_source=source, value=value, coding=coding or named)
        candidates.append(Candidate.known(when, prov, value, reason, note))
    for condition in conditions:
        usable, _ = _condition_usable(condition)
        if not usable:
            continue
        for stage in as_list(condition.get("stage")):
            stage = as_dict(stage)
            summary = stage.get("summary")
            if (
                _names_scale(stage.get("type"), terminology, scale) is None
                and _names_scale(summary, terminology, scale) is None
            ):
                continue
            value, coding = _stage_from(summary, None, terminology, scale)
            when, source = _condition_date(condition)
            prov = provenance(
                condition, when=when, when_source=source and f"stage ({source})", value=value, coding=coding
            )
            reason = None if value is not None else MissingReason.invalid
            candidates.append(Candidate.known(when, prov, value, reason, f"{label} summary not understood"))
    return select_recent(label, candidates, as_of, lookback, _SCALE_FEATURE[scale])


def _prior_surgery(procedures: CodeIndex, as_of: date) -> Feature:
    skipped = []
    for _, procedure, _, raw_coding in procedures.matching("procedures", ("hcc_surgery",)):
        status = text(procedure.get("status"))
        performed, _ = _procedure_date(procedure)
        if status != "completed":
            skipped.append(f"Procedure/{procedure.get('id')} status {status!r}")
            continue
        if performed is not None and performed.earliest > as_of:
            skipped.append(f"Procedure/{procedure.get('id')} after the order")
            continue
        prov = provenance(procedure, when=performed, when_source="performed", value=True, coding=coding_ref(raw_coding))
        return BoolFeature(value=True, provenance=prov, note=f"HCC surgery: Procedure/{procedure.get('id')}")
    note = "no completed HCC surgery Procedure found"
    if skipped:
        note += "; skipped: " + "; ".join(skipped)
    return BoolFeature(missing=MissingReason.not_found, note=note)


# --------------------------------------------------------------------------- safety findings

SAFETY_CONDITIONS = (
    "non_viral_liver_disease",
    "ascites",
    "hepatic_encephalopathy",
    "varices",
    "variceal_bleeding",
    "gi_bleeding",
    "organ_transplant",
    "autoimmune_disease",
)
SAFETY_PROCEDURES = ("upper_endoscopy", "variceal_treatment", "organ_transplant")


def _safety_findings(conditions: CodeIndex, procedures: CodeIndex, as_of: date) -> list[ClinicalFinding]:
    """Coded Conditions (any clinical status, flagged active or not) and completed Procedures in
    the safety keys, dated no later than the order; refuted or erroneous records are left out."""
    found: list[ClinicalFinding] = []
    coded = [match for key in SAFETY_CONDITIONS for match in conditions.matching("conditions", (key,))]
    for _, condition, key, raw_coding in coded:  # one code may mean two things (K70.31)
        if _status_code(condition.get("verificationStatus")) in SKIP_VERIFICATION:
            continue
        when, source = _condition_date(condition)
        if when is not None and when.earliest > as_of:
            continue
        clinical = _status_code(condition.get("clinicalStatus"))
        found.append(
            ClinicalFinding(
                key=key,
                when=when.earliest if when else None,
                when_text=when.text if when else None,
                active=clinical is None or clinical in ACTIVE_CLINICAL,
                provenance=provenance(
                    condition, when=when, when_source=source, value=True, coding=coding_ref(raw_coding)
                ),
            )
        )
    coded = [match for key in SAFETY_PROCEDURES for match in procedures.matching("procedures", (key,))]
    for _, procedure, key, raw_coding in coded:
        if text(procedure.get("status")) != "completed":
            continue
        when, source = _procedure_date(procedure)
        if when is not None and when.earliest > as_of:
            continue
        found.append(
            ClinicalFinding(
                key=key,
                when=when.earliest if when else None,
                when_text=when.text if when else None,
                provenance=provenance(
                    procedure, when=when, when_source=source, value=True, coding=coding_ref(raw_coding)
                ),
            )
        )
    found.sort(key=lambda f: f.when or date.min, reverse=True)
    return found


def _procedure_date(procedure: dict) -> tuple[FhirDate | None, str | None]:
    performed = parse_fhir_date(procedure.get("performedDateTime"))
    if performed is not None:
        return performed, "performedDateTime"
    start = parse_fhir_date(as_dict(procedure.get("performedPeriod")).get("start"))
    return (start, "performedPeriod.start") if start else (None, None)


# --------------------------------------------------------------------------- public


def map_patient_features(
    resources: Iterable[dict] | Any,
    *,
    as_of: date,
    terminology: Terminology,
    lab_lookback_days: int = 30,
    imaging_lookback_days: int = 90,
) -> PatientFeatures:
    """Map FHIR resources (or Bundles / prefetch values) to the model features at `as_of`."""
    flat, _, outcomes = collect(resources)
    observations = [r for r in flat if r.get("resourceType") == "Observation"]
    conditions = [r for r in flat if r.get("resourceType") == "Condition"]
    procedures = [r for r in flat if r.get("resourceType") == "Procedure"]
    report_dates = _report_dates(flat)
    thresholds = load_evidence().thresholds
    coded_observations = CodeIndex(terminology, observations, ("code", "valueCodeableConcept"))
    coded_conditions = CodeIndex(terminology, conditions)
    coded_procedures = CodeIndex(terminology, procedures)
    named_by = _naming_scales(coded_observations, observations)

    labs = {}
    for key, candidates in _lab_candidates(coded_observations, report_dates).items():
        labs[key] = select_recent(LAB_LABELS[key], candidates, as_of, lab_lookback_days, LabFeature)

    sizes = _tumour_sizes(coded_observations, terminology, report_dates)
    same_study = recent_same_day(sizes, as_of, imaging_lookback_days)
    if same_study:
        largest = max(same_study, key=lambda c: c.value)  # type: ignore[arg-type, return-value]
        size_feature = FloatFeature(
            value=largest.value,
            provenance=largest.provenance,
            note=f"largest of {len(same_study)} lesion measurement(s) on {largest.when.text}",  # type: ignore[union-attr]
        )
    else:
        size_feature = missing_recent("tumour size", sizes, as_of, imaging_lookback_days, FloatFeature)
    count_raw = select_recent(
        "tumour count",
        _tumour_counts(coded_observations, report_dates),
        as_of,
        imaging_lookback_days,
        Feature,  # (count, comparator): only read here
    )
    if count_raw.value is not None:
        count, comparator = count_raw.value
        count_feature = IntFeature(value=count, provenance=count_raw.provenance, note=count_raw.note)
        if comparator is not None:
            multiple = (
                BoolFeature(value=True, provenance=count_raw.provenance, note=f"tumour count {comparator}{count}")
                if count >= 1
                else BoolFeature(
                    missing=MissingReason.undecidable,
                    provenance=count_raw.provenance,
                    note=f"tumour count {comparator}{count} cannot tell single from multiple",
                )
            )
        else:
            multiple = BoolFeature(value=count >= 2, provenance=count_raw.provenance, note=f"tumour count {count}")
    else:
        count_feature = IntFeature(missing=count_raw.missing, provenance=count_raw.provenance, note=count_raw.note)
        distinct = {c.provenance.resource_id for c in same_study}
        if len(distinct) >= 2:
            # Lesion measurements list target lesions only, so this is a lower bound: enough
            # to say "multiple", never enough to say "single".
            multiple = BoolFeature(
                value=True,
                provenance=same_study[0].provenance,
                note=f"{len(distinct)} separately measured lesions on {same_study[0].when.text}; no tumour count",  # type: ignore[union-attr]
            )
        else:
            multiple = missing_like(count_raw, "multiple tumours needs a tumour count", BoolFeature)

    if size_feature.value is not None:
        size_over = BoolFeature(
            value=size_feature.value > thresholds.tumour_size_cm,
            provenance=size_feature.provenance,
            note=f"largest diameter {size_feature.value:g} cm vs threshold {thresholds.tumour_size_cm:g} cm",
        )
    else:
        size_over = missing_like(size_feature, "tumour size > 5 cm needs the largest diameter", BoolFeature)

    return PatientFeatures(
        as_of=as_of,
        **labs,
        tumour_size_cm=size_feature,
        tumour_count=count_feature,
        vascular_invasion=_finding(
            "vascular_invasion",
            "vascular invasion",
            coded_conditions,
            coded_observations,
            terminology,
            report_dates,
            as_of,
            imaging_lookback_days,
        ),
        extrahepatic_metastasis=_finding(
            "extrahepatic_metastasis",
            "extrahepatic metastasis",
            coded_conditions,
            coded_observations,
            terminology,
            report_dates,
            as_of,
            imaging_lookback_days,
        ),
        hcc_diagnosis=_condition_feature("hcc", "HCC", coded_conditions, as_of),
        aetiology=_aetiology(coded_conditions, as_of),
        cirrhosis=_condition_feature("cirrhosis", "cirrhosis", coded_conditions, as_of),
        child_pugh_class=_stage(
            "child_pugh",
            "Child-Pugh class",
            named_by["child_pugh"],
            conditions,
            terminology,
            report_dates,
            as_of,
            lab_lookback_days,
        ),
        bclc_stage=_stage(
            "bclc", "BCLC stage", named_by["bclc"], conditions, terminology, report_dates, as_of, imaging_lookback_days
        ),
        prior_hcc_surgery=_prior_surgery(coded_procedures, as_of),
        afp_over_400=_over(labs["afp"], thresholds.afp_ng_per_ml, "AFP > 400 ng/mL", "ng/mL"),
        alt_over_40=_over(labs["alt"], thresholds.alt_u_per_l, "ALT > 40 U/L", "U/L"),
        ast_over_40=_over(labs["ast"], thresholds.ast_u_per_l, "AST > 40 U/L", "U/L"),
        tumour_size_over_5cm=size_over,
        multiple_tumours=multiple,
        findings=_safety_findings(coded_conditions, coded_procedures, as_of),
        operation_outcomes=outcomes.messages(),
    )


# --------------------------------------------------------------------------- treatment history

NOT_TAKEN = frozenset({"entered-in-error", "cancelled", "draft", "not-taken", "not-done"})


def primary_window_days() -> int:
    """The study's 3-month window in days: 3 x 365.25/12 = 91.3, taken as 91 days."""
    months = load_evidence().cohort.primary_resistance_window_months
    return int(months * DAYS_PER_MONTH)


def _medication_start(resource: dict) -> tuple[FhirDate | None, str | None]:
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


def _exposures(
    flat: list[dict], by_ref: dict, terminology: Terminology, as_of: date | None
) -> tuple[list[DrugExposure], list[str]]:
    out, skipped = [], []
    for resource in flat:
        if resource.get("resourceType") not in MEDICATION_HOLDERS:
            continue
        matched = terminology.match_drug(medication_concept(resource, by_ref))
        if matched is None:
            continue
        name, coding = matched
        rid = f"{resource.get('resourceType')}/{resource.get('id')}"
        status = text(resource.get("status"))
        if status in NOT_TAKEN:
            skipped.append(f"{rid} ({name}) status {status}")
            continue
        if resource.get("resourceType") == "MedicationRequest" and resource.get("intent") in ("proposal", "plan"):
            skipped.append(f"{rid} ({name}) intent {resource.get('intent')}")
            continue
        when, source = _medication_start(resource)
        if when is not None and as_of is not None and when.earliest > as_of:
            skipped.append(f"{rid} ({name}) starts after {as_of.isoformat()}")
            continue
        out.append(
            DrugExposure(
                drug=name,
                drug_class=terminology.drugs[name].drug_class,  # type: ignore[arg-type]
                start=when.earliest if when and when.is_exact else None,
                start_text=when.text if when else None,
                start_precision=when.precision if when else None,  # type: ignore[arg-type]
                checkpoint=terminology.drugs[name].checkpoint,
                provenance=provenance(resource, when=when, when_source=source, value=name, coding=coding),
            )
        )
    return out, skipped


# Words that say a drug was stopped because the patient could not tolerate it, in a status reason
# or an AdverseEvent; coded reasons come from the terminology's stop_reasons.toxicity.
_TOXICITY_WORDS = re.compile(r"toxicit|intoleran|not tolerated|adverse|side[- ]effect|hand[- ]foot")


def _toxicity_reason(concepts: list, terminology: Terminology) -> CodingRef | None:
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


def _sorafenib_toxicity(
    flat: list[dict], by_ref: dict, sorafenib: list[DrugExposure], terminology: Terminology, as_of: date | None
) -> Feature:
    """Sorafenib stopped for toxicity: a sorafenib record whose statusReason says so, or an actual
    AdverseEvent whose suspected entity is sorafenib (the study excluded such switches)."""
    refs = {f"{e.provenance.resource_type}/{e.provenance.resource_id}" for e in sorafenib}
    for resource in flat:
        kind = resource.get("resourceType")
        rid = f"{kind}/{resource.get('id')}"
        if rid in refs:
            reasons = resource.get("statusReason")
            coding = _toxicity_reason(reasons if isinstance(reasons, list) else [reasons], terminology)
            if coding is not None:
                prov = provenance(resource, value=text(resource.get("status")), coding=coding)
                return BoolFeature(
                    value=True, provenance=prov, note=f"sorafenib {rid} status reason: {coding.display or coding.code}"
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
                        value=True, provenance=prov, note=f"{rid}: {label or 'adverse event'} with sorafenib suspected"
                    )
    return BoolFeature(missing=MissingReason.not_found, note="no sorafenib stop for toxicity recorded")


def _progression_events(
    flat: list[dict], terminology: Terminology, report_dates: dict, as_of: date | None
) -> list[tuple[FhirDate, Provenance]]:
    events = []
    for resource in flat:
        kind = resource.get("resourceType")
        if kind == "Observation":
            if terminology.match("progression", resource.get("code"), keys=("status_codes",)) is None:
                continue
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
            when, source = _observation_date(resource, report_dates)
        elif kind == "DiagnosticReport":
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
        else:
            continue
        if when is None or (as_of is not None and when.earliest > as_of):
            continue
        events.append((when, provenance(resource, when=when, when_source=source, value="progression", coding=coding)))
    events.sort(key=lambda e: (e[0].earliest, e[0].latest))
    return events


def map_treatment_history(
    resources: Iterable[dict] | Any, *, terminology: Terminology, as_of: date | None = None
) -> TreatmentHistory:
    """Sorafenib start, other TKI / PD-1 exposures, radiological progressions and the
    resistance type (primary: first progression <= 91 days after the sorafenib start)."""
    flat, by_ref, outcomes = collect(resources)
    window = primary_window_days()
    exposures, skipped = _exposures(flat, by_ref, terminology, as_of)
    by_class: dict[str, list[DrugExposure]] = {"sorafenib": [], "tki": [], "pd1_inhibitor": [], "other_systemic": []}
    for exposure in exposures:
        by_class[exposure.drug_class].append(exposure)
    for group in by_class.values():
        group.sort(key=lambda e: (e.start_text is None, e.start_text or ""))
    events = _progression_events(flat, terminology, _report_dates(flat), as_of)
    toxicity = _sorafenib_toxicity(flat, by_ref, by_class["sorafenib"], terminology, as_of)
    return TreatmentHistory(
        sorafenib_exposures=by_class["sorafenib"],
        other_tki_exposures=by_class["tki"],
        pd1_exposures=by_class["pd1_inhibitor"],
        other_systemic_exposures=by_class["other_systemic"],
        progressions=[
            ProgressionEvent(date=w.earliest, date_text=w.text, date_precision=w.precision, provenance=p)  # type: ignore[arg-type]
            for w, p in events
        ],
        primary_window_days=window,
        sorafenib_toxicity=toxicity,
        operation_outcomes=outcomes.messages(),
        **_derive_resistance(by_class["sorafenib"], events, skipped, window),
    )


def _derive_resistance(
    sorafenib: list[DrugExposure],
    events: list[tuple[FhirDate, Provenance]],
    skipped: list[str],
    window: int,
) -> dict[str, Feature]:
    """TreatmentHistory's sorafenib_start, first_progression_after_sorafenib, months_to_progression
    and resistance_type, each built as the Feature type the model declares (validated once)."""

    def missing_all(reason: MissingReason, note: str, prov: Provenance | None = None) -> dict[str, Feature]:
        return {
            "first_progression_after_sorafenib": DateFeature(missing=reason, provenance=prov, note=note),
            "resistance_type": ResistanceFeature(missing=reason, provenance=prov, note=note),
            "months_to_progression": FloatFeature(missing=reason, provenance=prov, note=note),
            "days_to_progression": IntFeature(missing=reason, provenance=prov, note=note),
            "sorafenib_failure": BoolFeature(missing=reason, provenance=prov, note=note),
        }

    if not sorafenib:
        note = "no sorafenib exposure found"
        if skipped:
            note += "; skipped: " + "; ".join(skipped)
        start = DateFeature(missing=MissingReason.no_sorafenib, note=note)
        return {"sorafenib_start": start, **missing_all(MissingReason.no_sorafenib, note)}
    dated = [(parse_fhir_date(e.start_text), e) for e in sorafenib if e.start_text]
    dated = [(w, e) for w, e in dated if w is not None]
    if not dated:
        note = "sorafenib recorded without any start date: " + ", ".join(
            f"{e.provenance.resource_type}/{e.provenance.resource_id}" for e in sorafenib
        )
        start = DateFeature(missing=MissingReason.no_date, provenance=sorafenib[0].provenance, note=note)
        return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, sorafenib[0].provenance)}
    # The true first start lies between the earliest possible and the earliest certain date.
    first_when, first = min(dated, key=lambda d: (d[0].earliest, d[0].latest))
    start_low = first_when.earliest
    start_high = min(w.latest for w, _ in dated)
    start_desc = f"sorafenib start {first_when.text} ({first.provenance.resource_type}/{first.provenance.resource_id})"
    if start_low == start_high:
        start = DateFeature(value=start_low, provenance=first.provenance, note=start_desc)
    else:
        start = DateFeature(
            missing=MissingReason.ambiguous,
            provenance=first.provenance,
            note=f"{start_desc} is only known to {first_when.precision} precision",
        )
    after = [(w, p) for w, p in events if w.latest > start_low]
    if not after:
        if events:
            w, p = events[-1]
            note = f"progression recorded only on or before the {start_desc} (last {w.text})"
            return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, p)}
        note = f"no radiological progression recorded after the {start_desc}"
        return {"sorafenib_start": start, **missing_all(MissingReason.no_progression, note)}
    prog_when, prog = min(after, key=lambda e: (e[0].earliest, e[0].latest))
    prog_desc = f"first progression {prog_when.text} ({prog.resource_type}/{prog.resource_id})"
    if prog_when.earliest <= start_high:
        note = f"cannot tell whether the {prog_desc} came after the {start_desc}"
        return {"sorafenib_start": start, **missing_all(MissingReason.ambiguous, note, prog)}
    if prog_when.is_exact:
        first_progression = DateFeature(value=prog_when.earliest, provenance=prog, note=prog_desc)
    else:
        first_progression = DateFeature(
            missing=MissingReason.ambiguous,
            provenance=prog,
            note=f"{prog_desc} is only known to {prog_when.precision} precision",
        )
    days_low = (prog_when.earliest - start_high).days
    days_high = (prog_when.latest - start_low).days
    both = f"{start_desc}; {prog_desc}"
    if days_low == days_high:
        months = FloatFeature(
            value=round(days_low / DAYS_PER_MONTH, 1), provenance=prog, note=f"{days_low} days; {both}"
        )
        days = IntFeature(value=days_low, provenance=prog, note=f"{days_low} days; {both}")
    else:
        months = FloatFeature(
            missing=MissingReason.ambiguous, provenance=prog, note=f"between {days_low} and {days_high} days; {both}"
        )
        days = IntFeature(missing=MissingReason.ambiguous, provenance=prog, note=months.note)
    if days_high <= window:
        resistance = ResistanceFeature(
            value="primary",
            provenance=prog,
            note=f"progression {days_high if days_low == days_high else f'<= {days_high}'} days after start (<= {window}); {both}",
        )
    elif days_low > window:
        resistance = ResistanceFeature(
            value="secondary",
            provenance=prog,
            note=f"progression {days_low if days_low == days_high else f'>= {days_low}'} days after start (> {window}); {both}",
        )
    else:
        resistance = ResistanceFeature(
            missing=MissingReason.ambiguous,
            provenance=prog,
            note=f"progression between {days_low} and {days_high} days after start; the {window}-day window is undecidable; {both}",
        )
    return {
        "sorafenib_start": start,
        "first_progression_after_sorafenib": first_progression,
        "months_to_progression": months,
        "days_to_progression": days,
        "progression_day_range": (days_low, days_high),
        "resistance_type": resistance,
        "sorafenib_failure": BoolFeature(
            value=True, provenance=prog, note=f"radiological progression after sorafenib: {both}"
        ),
    }
