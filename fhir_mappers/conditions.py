"""Conditions and staging: the HCC diagnosis, aetiology, cirrhosis, Child-Pugh class and BCLC
stage, prior HCC surgery, and the coded findings the safety screening reads."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any

from fhir_mappers._common import Candidate, as_dict, as_list, provenance, select_recent, text, with_skipped
from fhir_mappers.features import (
    AetiologyFeature,
    BclcFeature,
    BoolFeature,
    ChildPughFeature,
    ClinicalFinding,
    CodingRef,
    Feature,
    MissingReason,
)
from fhir_mappers.fhirdates import FhirDate, parse_fhir_date
from fhir_mappers.notes import Note
from fhir_mappers.record import PatientRecord
from fhir_mappers.terminology import CodeIndex, Terminology, coding_ref
from fhir_mappers.values import unusable_because

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
SKIP_VERIFICATION = frozenset({"refuted", "entered-in-error"})


def condition_features(
    record: PatientRecord, as_of: date, lab_lookback_days: int, imaging_lookback_days: int
) -> dict[str, object]:
    """PatientFeatures' condition and staging fields: Child-Pugh takes the lab look-back, BCLC the
    imaging one."""
    conditions, procedures = record.conditions, record.procedures
    named_by = _naming_scales(record)
    return {
        "hcc_diagnosis": _condition_feature("hcc", "HCC", conditions, as_of),
        "aetiology": _aetiology(conditions, as_of),
        "cirrhosis": _condition_feature("cirrhosis", Note("label.cirrhosis", "cirrhosis"), conditions, as_of),
        "child_pugh_class": _stage(
            "child_pugh",
            Note("label.child_pugh", "Child-Pugh class"),
            named_by["child_pugh"],
            record,
            as_of,
            lab_lookback_days,
        ),
        "bclc_stage": _stage(
            "bclc", Note("label.bclc", "BCLC stage"), named_by["bclc"], record, as_of, imaging_lookback_days
        ),
        "prior_hcc_surgery": _prior_surgery(procedures, as_of),
        "findings": _safety_findings(conditions, procedures, as_of),
    }


def condition_usable(condition: dict[str, Any]) -> tuple[bool, str]:
    verification = _status_code(condition.get("verificationStatus"))
    if verification in SKIP_VERIFICATION:
        return False, Note("mapper.verification_status", "verificationStatus %(status)s", status=str(verification))
    clinical = _status_code(condition.get("clinicalStatus"))
    if clinical is not None and clinical not in ACTIVE_CLINICAL:
        return False, Note("mapper.clinical_status", "clinicalStatus %(status)s", status=str(clinical))
    return True, ""


def _status_code(concept: object) -> str | None:
    for coding in as_list(as_dict(concept).get("coding")):
        code = text(as_dict(coding).get("code"))
        if code:
            return code
    return None


def condition_date(condition: dict[str, Any]) -> tuple[FhirDate | None, str | None]:
    for element in ("onsetDateTime", "recordedDate"):
        parsed = parse_fhir_date(condition.get(element))
        if parsed is not None:
            return parsed, element
    period = as_dict(condition.get("onsetPeriod"))
    parsed = parse_fhir_date(period.get("start"))
    return (parsed, "onsetPeriod.start") if parsed else (None, None)


def _conditions_matching(
    key: str, conditions: CodeIndex, as_of: date
) -> tuple[list[tuple[dict[str, Any], CodingRef]], list[str]]:
    found: list[tuple[dict[str, Any], CodingRef]] = []
    skipped: list[str] = []
    for _, condition, _, raw_coding in conditions.matching("conditions", (key,)):
        usable, why = condition_usable(condition)
        when, _ = condition_date(condition)
        if not usable:
            skipped.append(
                Note("mapper.skipped_unusable", "%(ref)s %(why)s", ref=f"Condition/{condition.get('id')}", why=why)
            )
        elif when is not None and when.earliest > as_of:
            skipped.append(
                Note(
                    "mapper.skipped_condition_after_order",
                    "%(ref)s dated %(when)s, after the order",
                    ref=f"Condition/{condition.get('id')}",
                    when=when.text,
                )
            )
        else:
            found.append((condition, coding_ref(raw_coding)))
    return found, skipped


def _condition_feature(key: str, label: str, conditions: CodeIndex, as_of: date) -> Feature[Any]:
    found, skipped = _conditions_matching(key, conditions, as_of)
    if found:
        condition, coding = found[0]
        when, source = condition_date(condition)
        prov = provenance(condition, when=when, when_source=source, value=True, coding=coding)
        return BoolFeature(value=True, provenance=prov, note=f"{label}: Condition/{condition.get('id')}")
    note = Note("mapper.no_condition", "no %(label)s Condition found", label=label)
    return BoolFeature(missing=MissingReason.not_found, note=with_skipped(note, skipped))


def _aetiology(conditions: CodeIndex, as_of: date) -> Feature[Any]:
    """HBV and/or HCV when coded; "other" when only a non-viral liver disease is (the study
    included HBV/HCV only); missing when neither is."""
    hbv, _ = _conditions_matching("hbv", conditions, as_of)
    hcv, _ = _conditions_matching("hcv", conditions, as_of)
    if not hbv and not hcv:
        other, _ = _conditions_matching("non_viral_liver_disease", conditions, as_of)
        if other:
            condition, coding = other[0]
            when, source = condition_date(condition)
            prov = provenance(condition, when=when, when_source=source, value="other", coding=coding)
            return AetiologyFeature(
                value="other",
                provenance=prov,
                note=Note(
                    "mapper.other_aetiology",
                    "non-viral liver disease %(ref)s and no HBV or HCV Condition",
                    ref=f"Condition/{condition.get('id')}",
                ),
            )
        return AetiologyFeature(
            missing=MissingReason.not_found, note=Note("mapper.no_viral_aetiology", "no HBV or HCV Condition found")
        )
    value = "hbv_hcv" if hbv and hcv else "hbv" if hbv else "hcv"
    condition, coding = (hbv or hcv)[0]
    when, source = condition_date(condition)
    prov = provenance(condition, when=when, when_source=source, value=value, coding=coding)
    ids = [f"Condition/{c.get('id')}" for c, _ in hbv + hcv]
    return AetiologyFeature(value=value, provenance=prov, note=f"aetiology from {', '.join(ids)}")


SCALES = ("child_pugh", "bclc")
_SCALE_FEATURE: dict[str, type[Feature[Any]]] = {"child_pugh": ChildPughFeature, "bclc": BclcFeature}
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


def _naming_scales(record: PatientRecord) -> dict[str, list[tuple[dict[str, Any], CodingRef]]]:
    """Scale -> the Observations whose code names it (by code, else in words), in order: the
    code labels are read once for both scales."""
    observations = record.observations
    by_code = {scale: {c.position: c.coding for c in observations.matching("staging", (scale,))} for scale in SCALES}
    coded = {position for positions in by_code.values() for position in positions}
    out: dict[str, list[tuple[dict[str, Any], CodingRef]]] = {scale: [] for scale in SCALES}
    for position, obs in enumerate(record.of_type("Observation")):
        labels = _labels(obs.get("code"))
        in_words = _scales_named_in(labels) if labels else _NAMED_NOWHERE
        if in_words is _NAMED_NOWHERE and position not in coded:
            continue  # nearly every Observation of a long history: one cached look-up, no loop
        for scale, words in zip(SCALES, in_words, strict=True):
            named = by_code[scale].get(position)
            if named is None:
                named = words
            if named is not None:
                out[scale].append((obs, named))
    return out


_NAMED_NOWHERE: tuple[CodingRef | None, ...] = (None,) * len(SCALES)


@lru_cache(maxsize=4096)
def _scales_named_in(labels: tuple[str, ...]) -> tuple[CodingRef | None, ...]:
    """`_named_in` for each of SCALES at once; the shared _NAMED_NOWHERE when no label names one."""
    named = tuple(_named_in(labels, scale) for scale in SCALES)
    return _NAMED_NOWHERE if named == _NAMED_NOWHERE else named


def _stage(
    scale: str,
    label: str,
    named_by: list[tuple[dict[str, Any], CodingRef]],
    record: PatientRecord,
    as_of: date,
    lookback: int,
) -> Feature[Any]:
    terminology = record.terminology
    candidates = []
    for obs, named in named_by:
        when, source = record.observation_date(obs)
        reason, note = unusable_because(obs, label)
        value, coding = _stage_from(obs.get("valueCodeableConcept"), obs.get("valueString"), terminology, scale)
        if reason is None and value is None:
            reason, note = MissingReason.invalid, f"{label} value in Observation/{obs.get('id')} not understood"
        prov = provenance(obs, when=when, when_source=source, value=value, coding=coding or named)
        candidates.append(Candidate.known(when, prov, value, reason, note))
    for condition in record.of_type("Condition"):
        usable, _ = condition_usable(condition)
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
            when, source = condition_date(condition)
            prov = provenance(
                condition, when=when, when_source=source and f"stage ({source})", value=value, coding=coding
            )
            reason = None if value is not None else MissingReason.invalid
            candidates.append(Candidate.known(when, prov, value, reason, f"{label} summary not understood"))
    return select_recent(label, candidates, as_of, lookback, _SCALE_FEATURE[scale])


def _prior_surgery(procedures: CodeIndex, as_of: date) -> Feature[Any]:
    skipped = []
    for _, procedure, _, raw_coding in procedures.matching("procedures", ("hcc_surgery",)):
        status = text(procedure.get("status"))
        performed, _ = _procedure_date(procedure)
        if status != "completed":
            skipped.append(
                Note(
                    "mapper.skipped_status",
                    "%(ref)s status %(status)s",
                    ref=f"Procedure/{procedure.get('id')}",
                    status=repr(status),
                )
            )
            continue
        if performed is not None and performed.earliest > as_of:
            skipped.append(
                Note("mapper.skipped_after_order", "%(ref)s after the order", ref=f"Procedure/{procedure.get('id')}")
            )
            continue
        prov = provenance(procedure, when=performed, when_source="performed", value=True, coding=coding_ref(raw_coding))
        return BoolFeature(value=True, provenance=prov, note=f"HCC surgery: Procedure/{procedure.get('id')}")
    note = Note("mapper.no_surgery", "no completed HCC surgery Procedure found")
    return BoolFeature(missing=MissingReason.not_found, note=with_skipped(note, skipped))


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
        when, source = condition_date(condition)
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


def _procedure_date(procedure: dict[str, Any]) -> tuple[FhirDate | None, str | None]:
    performed = parse_fhir_date(procedure.get("performedDateTime"))
    if performed is not None:
        return performed, "performedDateTime"
    start = parse_fhir_date(as_dict(procedure.get("performedPeriod")).get("start"))
    return (start, "performedPeriod.start") if start else (None, None)
