"""Laboratory features: AFP, ALT, AST, bilirubin, albumin, platelets, INR, and the binaries the
risk model reads (AFP > 400 ng/mL, ALT / AST > 40 U/L)."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

from fhir_mappers._common import Assessment, Candidate, as_dict, missing_like, provenance, select_recent, text
from fhir_mappers.features import BoolFeature, Feature, LabFeature, LabValue, MissingReason
from fhir_mappers.fhirdates import FhirDate
from fhir_mappers.notes import Note
from fhir_mappers.record import PatientRecord
from fhir_mappers.terminology import coding_ref
from fhir_mappers.values import LAB_LABELS, observation_value, unusable_because
from hcc_evidence import load_evidence


def lab_features(record: PatientRecord, as_of: date, lookback_days: int) -> dict[str, Feature[Any]]:
    """PatientFeatures' labs (the most recent usable value in the window) and the binaries the
    risk model reads, with the study's thresholds (strictly greater than)."""
    thresholds = load_evidence().thresholds
    labs = {
        key: select_recent(LAB_LABELS[key], candidates, as_of, lookback_days, LabFeature)
        for key, candidates in _lab_candidates(record).items()
    }
    return {
        **labs,
        "afp_over_400": _over(labs["afp"], thresholds.afp_ng_per_ml, "AFP > 400 ng/mL", "ng/mL"),
        "alt_over_40": _over(labs["alt"], thresholds.alt_u_per_l, "ALT > 40 U/L", "U/L"),
        "ast_over_40": _over(labs["ast"], thresholds.ast_u_per_l, "AST > 40 U/L", "U/L"),
    }


def _lab_candidates(record: PatientRecord) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {key: [] for key in LAB_LABELS}
    for coded in record.observations.matching("labs"):
        obs, by_name = coded.resource, record.observations.matched_by_name(coded)
        when, source = record.observation_date(obs)
        assess = partial(_lab_assessment, obs, coded.key, coded.raw_coding, by_name, when, source)
        out[coded.key].append(Candidate(when, assess))
    return out


def _lab_assessment(
    obs: dict[str, Any],
    key: str,
    raw_coding: dict[str, Any],
    by_name: bool,
    when: FhirDate | None,
    source: str | None,
) -> Assessment:
    """The lab value in the model unit or why not, with provenance (and its CodingRef): only for
    the candidates select_recent looks at."""
    raw_q = as_dict(obs.get("valueQuantity"))
    prov = provenance(
        obs,
        when=when,
        when_source=source,
        value=raw_q.get("value") if raw_q else obs.get("valueString"),
        unit=text(raw_q.get("unit")) or text(raw_q.get("code")),
        comparator=text(raw_q.get("comparator")),
        coding=coding_ref(raw_coding),
        matched_by_name=by_name,
    )
    reason, note = unusable_because(obs, LAB_LABELS[key])
    value = None
    if reason is None:
        value, reason, note = observation_value(key, obs)
    return Assessment(prov, value, reason, note)


def _over(source: Feature[Any], threshold: float, name: str, unit: str) -> Feature[Any]:
    """Binary 'value > threshold' honouring the comparator; missing if undecidable."""
    if source.value is None:
        return missing_like(source, Note("mapper.needs_value", "%(name)s needs the value", name=name), BoolFeature)
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
            note=Note(
                "labs.undecidable",
                "%(shown)s cannot tell whether the value is above %(threshold)s %(unit)s",
                shown=shown,
                threshold=f"{threshold:g}",
                unit=unit,
            ),
        )
    note = Note(
        "labs.vs_threshold",
        "%(shown)s vs threshold %(threshold)s %(unit)s",
        shown=shown,
        threshold=f"{threshold:g}",
        unit=unit,
    )
    return BoolFeature(value=result, provenance=source.provenance, note=note)
