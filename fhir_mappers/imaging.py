"""Imaging and tumour burden: the largest diameter and the tumour count on the most recent study,
the binaries the risk model reads, vascular invasion and extrahepatic metastasis."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fhir_mappers._common import (
    Candidate,
    as_dict,
    as_list,
    missing_like,
    missing_recent,
    provenance,
    recent_same_day,
    select_recent,
    text,
)
from fhir_mappers.conditions import condition_date, condition_usable
from fhir_mappers.features import BoolFeature, Feature, FloatFeature, IntFeature, MissingReason
from fhir_mappers.notes import Note, joined
from fhir_mappers.record import PatientRecord
from fhir_mappers.terminology import Terminology, coding_ref
from fhir_mappers.values import quantity, unusable_because
from hcc_evidence import load_evidence

TUMOUR_SIZE = Note("label.tumour_size", "tumour size")
TUMOUR_COUNT = Note("label.tumour_count", "tumour count")


def tumour_features(record: PatientRecord, as_of: date, lookback_days: int) -> dict[str, Feature[Any]]:
    """Tumour burden on the most recent study in the window: the largest diameter, the tumour
    count, the binaries the risk model reads (> 5 cm, multiple), and vascular invasion and
    extrahepatic metastasis (from Conditions or imaging findings)."""
    thresholds = load_evidence().thresholds
    sizes = _tumour_sizes(record)
    same_study = recent_same_day(sizes, as_of, lookback_days)
    if same_study:
        largest = max(same_study, key=lambda c: c.value)  # type: ignore[arg-type, return-value]
        size_feature = FloatFeature(
            value=largest.value,
            provenance=largest.provenance,
            note=Note(
                "imaging.largest_of",
                "largest of %(n)s lesion measurement(s) on %(when)s",
                n=len(same_study),
                when=largest.when.text,  # type: ignore[union-attr]
            ),
        )
    else:
        size_feature = missing_recent(TUMOUR_SIZE, sizes, as_of, lookback_days, FloatFeature)
    count_raw = select_recent(
        TUMOUR_COUNT,
        _tumour_counts(record),
        as_of,
        lookback_days,
        Feature,  # (count, comparator): only read here
    )
    if count_raw.value is not None:
        count, comparator = count_raw.value
        count_feature = IntFeature(value=count, provenance=count_raw.provenance, note=count_raw.note)
        if comparator is not None:
            multiple = (
                BoolFeature(
                    value=True,
                    provenance=count_raw.provenance,
                    note=Note(
                        "imaging.count_at_least",
                        "tumour count %(comparator)s%(count)s",
                        comparator=comparator,
                        count=count,
                    ),
                )
                if count >= 1
                else BoolFeature(
                    missing=MissingReason.undecidable,
                    provenance=count_raw.provenance,
                    note=Note(
                        "imaging.count_undecidable",
                        "tumour count %(count)s cannot tell single from multiple",
                        count=f"{comparator}{count}",
                    ),
                )
            )
        else:
            multiple = BoolFeature(
                value=count >= 2,
                provenance=count_raw.provenance,
                note=Note("imaging.count", "tumour count %(count)s", count=count),
            )
    else:
        count_feature = IntFeature(missing=count_raw.missing, provenance=count_raw.provenance, note=count_raw.note)
        distinct = {c.provenance.resource_id for c in same_study}
        if len(distinct) >= 2:
            # Lesion measurements list target lesions only, so this is a lower bound: enough
            # to say "multiple", never enough to say "single".
            multiple = BoolFeature(
                value=True,
                provenance=same_study[0].provenance,
                note=Note(
                    "imaging.separate_lesions",
                    "%(n)s separately measured lesions on %(when)s; no tumour count",
                    n=len(distinct),
                    when=same_study[0].when.text,  # type: ignore[union-attr]
                ),
            )
        else:
            needs = Note("imaging.multiple_needs_count", "multiple tumours needs a tumour count")
            multiple = missing_like(count_raw, needs, BoolFeature)

    if size_feature.value is not None:
        size_over = BoolFeature(
            value=size_feature.value > thresholds.tumour_size_cm,
            provenance=size_feature.provenance,
            note=Note(
                "imaging.size_vs_threshold",
                "largest diameter %(size)s cm vs threshold %(threshold)s cm",
                size=f"{size_feature.value:g}",
                threshold=f"{thresholds.tumour_size_cm:g}",
            ),
        )
    else:
        size_over = missing_like(size_feature, "tumour size > 5 cm needs the largest diameter", BoolFeature)

    return {
        "tumour_size_cm": size_feature,
        "tumour_count": count_feature,
        "tumour_size_over_5cm": size_over,
        "multiple_tumours": multiple,
        "vascular_invasion": _finding(
            "vascular_invasion", Note("label.vascular_invasion", "vascular invasion"), record, as_of, lookback_days
        ),
        "extrahepatic_metastasis": _finding(
            "extrahepatic_metastasis",
            Note("label.extrahepatic_metastasis", "extrahepatic metastasis"),
            record,
            as_of,
            lookback_days,
        ),
    }


def _tumour_sizes(record: PatientRecord) -> list[Candidate]:
    out = []
    for _, obs, _, raw_coding in record.observations.matching("imaging", ("tumour_size",)):
        when, source = record.observation_date(obs)
        reason, note = unusable_because(obs, TUMOUR_SIZE)
        quantities = []
        for component in as_list(obs.get("component")):
            if record.terminology.match("imaging", as_dict(component).get("code"), keys=("tumour_size_longest",)):
                quantities.append(as_dict(component).get("valueQuantity"))
        if not quantities and "valueQuantity" in obs:
            quantities.append(obs.get("valueQuantity"))
        value, raw_q = None, {}
        if reason is None:
            if not quantities:
                reason, note = MissingReason.invalid, f"tumour size in Observation/{obs.get('id')} has no diameter"
            for q in quantities:
                lab, why, why_note, raw = quantity("tumour_size", q)
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


def _tumour_counts(record: PatientRecord) -> list[Candidate]:
    out = []
    for _, obs, _, raw_coding in record.observations.matching("imaging", ("tumour_count",)):
        when, source = record.observation_date(obs)
        reason, note = unusable_because(obs, TUMOUR_COUNT)
        raw: object = obs.get("valueInteger")
        comparator = None
        if raw is None:
            q = as_dict(obs.get("valueQuantity"))
            raw, comparator = q.get("value"), text(q.get("comparator"))
        value = None
        if reason is None:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or raw != int(raw):
                reason, note = (
                    MissingReason.invalid,
                    Note("imaging.count_not_whole", "tumour count %(raw)s is not a whole number", raw=repr(raw)),
                )
            elif comparator is not None and comparator not in (">", ">="):
                reason, note = (
                    MissingReason.undecidable,
                    Note(
                        "imaging.count_not_a_count",
                        "tumour count %(comparator)s%(raw)s is not a count",
                        comparator=comparator,
                        raw=str(raw),
                    ),
                )
            else:
                value = (int(raw), comparator)
        prov = provenance(
            obs, when=when, when_source=source, value=raw, comparator=comparator, coding=coding_ref(raw_coding)
        )
        out.append(Candidate.known(when, prov, value, reason, note))
    return out


def _finding_value(obs: dict[str, Any], terminology: Terminology) -> bool | None:
    answer = obs.get("valueBoolean")
    if isinstance(answer, bool):
        return answer
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


def _finding(key: str, label: str, record: PatientRecord, as_of: date, lookback: int) -> Feature[Any]:
    """Present if an active Condition codes it; else the most recent imaging finding in the window."""
    skipped: list[str] = []
    for _, condition, _, raw_coding in record.conditions.matching("findings", (key,)):
        usable, why = condition_usable(condition)
        when, source = condition_date(condition)
        if not usable:
            skipped.append(f"Condition/{condition.get('id')} ({why})")
            continue
        if when is not None and when.earliest > as_of:
            skipped.append(
                Note(
                    "mapper.skipped_dated_after_order",
                    "%(ref)s (dated after the order)",
                    ref=f"Condition/{condition.get('id')}",
                )
            )
            continue
        prov = provenance(condition, when=when, when_source=source, value=True, coding=coding_ref(raw_coding))
        return BoolFeature(value=True, provenance=prov, note=f"{label}: active Condition/{condition.get('id')}")
    by_code = {c.position: c for c in record.observations.matching("findings", (key,))}
    by_value = {c.position: c for c in record.observations.matching("findings", (key,), "valueCodeableConcept")}
    candidates = []
    for position in sorted(by_code.keys() | by_value.keys()):
        obs = (by_code.get(position) or by_value[position]).resource
        when, source = record.observation_date(obs)
        reason, note = unusable_because(obs, label)
        value = True if position in by_value else _finding_value(obs, record.terminology)
        if reason is None and value is None:
            reason, note = MissingReason.invalid, f"{label}: answer in Observation/{obs.get('id')} not understood"
        coding = (by_value.get(position) or by_code[position]).coding
        prov = provenance(obs, when=when, when_source=source, value=value, coding=coding)
        candidates.append(Candidate.known(when, prov, value, reason, note))
    feature = select_recent(label, candidates, as_of, lookback, BoolFeature)
    if feature.value is None and skipped and feature.missing is MissingReason.not_found:
        feature.note = Note("imaging.only_skipped", "%(label)s: only %(skipped)s", label=label, skipped=joined(skipped))
    return feature
