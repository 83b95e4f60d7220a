"""What one Observation says, whatever the feature: whether it may be used (status, data absent)
and its valueQuantity (or a valueString holding one number) in the model unit, or why not."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, NamedTuple

from fhir.resources.R4B.quantity import Quantity
from pydantic import ValidationError

from fhir_mappers._common import ERROR_STATUSES, FINAL_STATUSES, as_dict, as_list, text
from fhir_mappers.features import LabValue, MissingReason
from fhir_mappers.notes import Note
from fhir_mappers.text_values import parse_quantity_text
from fhir_mappers.units import MODEL_UNITS, convert, implausible

LAB_LABELS: dict[str, str] = {  # Notes where the cards word the name (AFP, ALT... read the same)
    "afp": "AFP",
    "alt": "ALT",
    "ast": "AST",
    "bilirubin": Note("lab.bilirubin", "total bilirubin"),
    "albumin": Note("lab.albumin", "albumin"),
    "platelets": Note("lab.platelets", "platelet count"),
    "inr": "INR",
}
COMPARATORS = frozenset({"<", "<=", ">=", ">"})


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


def _plain_quantity(raw: dict[str, Any]) -> _PlainQuantity | None:
    """The everyday valueQuantity (a finite number, a known comparator, tidy strings) without the
    cost of a fhir.resources model (20+ per call; bench/README.md); None sends it to full validation."""
    if not raw.keys() <= _PLAIN_QUANTITY_KEYS:
        return None
    value = raw.get("value")
    if not isinstance(value, (int, float)) or type(value) not in _NUMBER or not math.isfinite(value):
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


Reading = tuple[LabValue | None, MissingReason | None, str]  # the value in the model unit, or why not


def _label(feature: str) -> str:
    return LAB_LABELS.get(feature) or feature.replace("_", " ")


def observation_value(feature: str, obs: dict[str, Any]) -> Reading:
    """The Observation's valueQuantity, else its valueString read as one (a laboratory system's
    ">1210 ng/mL"): both then take the same conversion, comparator and plausibility path."""
    result = obs.get("valueString")
    if obs.get("valueQuantity") is None and isinstance(result, str):
        return text_quantity(feature, result)
    value, reason, note, _ = quantity(feature, obs.get("valueQuantity"))
    return value, reason, note


def text_quantity(feature: str, result: str) -> Reading:
    """A text result as a value in the model unit: only one number with an optional comparator and
    unit is read (text_values); anything else is invalid, the note quoting the text."""
    label = _label(feature)
    parsed = parse_quantity_text(result)
    if parsed is None:
        return (
            None,
            MissingReason.invalid,
            Note(
                "mapper.text_not_a_quantity",
                "%(label)s text result %(text)s is not one number with an optional comparator and unit; not used",
                label=label,
                text=repr(result),
            ),
        )
    return _in_model_unit(feature, parsed.value, parsed.comparator, parsed.unit, None, None, from_text=True)


def quantity(feature: str, raw: object) -> tuple[LabValue | None, MissingReason | None, str, dict[str, Any]]:
    """valueQuantity -> value in the model unit, or why not. Also returns the raw dict."""
    label = _label(feature)
    if not isinstance(raw, dict):
        return (
            None,
            MissingReason.invalid,
            Note("mapper.no_quantity", "%(label)s has no valueQuantity", label=label),
            {},
        )
    if raw.get("value") is not None and type(raw["value"]) not in _NUMBER:  # FHIR JSON: never "80"
        why = Note(
            "mapper.not_json_number",
            "%(label)s value %(value)s is not a JSON number",
            label=label,
            value=repr(raw["value"]),
        )
        return None, MissingReason.invalid, why, raw
    parsed: _PlainQuantity | Quantity | None = _plain_quantity(raw)
    if parsed is None:  # anything unusual gets the full FHIR validation and its error message
        try:
            parsed = Quantity.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return None, MissingReason.invalid, f"{label} valueQuantity.{where}: {first.get('msg')}", raw
    if parsed.value is None:
        return (
            None,
            MissingReason.invalid,
            Note("mapper.quantity_no_value", "%(label)s valueQuantity has no value", label=label),
            raw,
        )
    number = float(parsed.value)
    if not math.isfinite(number):
        return None, MissingReason.invalid, f"{label} value {raw.get('value')!r} is not finite", raw
    comparator = parsed.comparator
    if comparator is not None and comparator not in COMPARATORS:
        return None, MissingReason.invalid, f"{label} comparator {comparator!r} is not a FHIR comparator", raw
    return (*_in_model_unit(feature, number, comparator, parsed.unit, parsed.system, parsed.code), raw)


def _in_model_unit(
    feature: str,
    number: float,
    comparator: str | None,
    unit: str | None,
    system: str | None,
    code: str | None,
    from_text: bool = False,
) -> Reading:
    """The one path from a number and its unit to a usable value: conversion, then plausibility."""
    label = _label(feature)
    converted = convert(feature, number, code, system, unit)
    if converted is None:
        shown = unit or code or "(none)"
        return (
            None,
            MissingReason.unit_unknown,
            Note(
                "mapper.unit_unknown",
                "%(label)s unit %(unit)s is not a known unit for %(label)s (model unit %(model_unit)s)",
                label=label,
                unit=repr(shown),
                model_unit=MODEL_UNITS[feature],
            ),
        )
    value, _ = converted
    impossible = implausible(feature, value)
    if impossible is not None:
        return (
            None,
            MissingReason.implausible,
            Note("mapper.implausible", "%(label)s %(why)s; not used", label=label, why=impossible),
        )
    lab = LabValue(value=round(value, 6), unit=MODEL_UNITS[feature], comparator=comparator, from_text=from_text)
    return lab, None, ""


def _status_reason(resource: dict[str, Any], label: str) -> tuple[MissingReason | None, str]:
    status = text(resource.get("status"))
    if status in FINAL_STATUSES:
        return None, ""
    rid = f"{resource.get('resourceType')}/{resource.get('id')}"
    if status in ERROR_STATUSES:
        return MissingReason.entered_in_error, Note(
            "mapper.status_error",
            "%(label)s in %(ref)s has status %(status)s; ignored",
            label=label,
            ref=rid,
            status=status,
        )
    return MissingReason.not_final, Note(
        "mapper.status_not_final",
        "%(label)s in %(ref)s has status %(status)s, not final/amended/corrected",
        label=label,
        ref=rid,
        status=repr(status),
    )


def _absent_reason(resource: dict[str, Any], label: str) -> tuple[MissingReason | None, str]:
    absent = resource.get("dataAbsentReason")
    if absent is None:
        return None, ""
    concept = as_dict(absent)
    codes = [text(c.get("code")) for c in as_list(concept.get("coding")) if isinstance(c, dict)]
    why = text(concept.get("text")) or ", ".join(c for c in codes if c) or "no reason given"
    return MissingReason.data_absent, f"{label}: data absent ({why})"


def unusable_because(obs: dict[str, Any], label: str) -> tuple[MissingReason | None, str]:
    """Why an Observation cannot give a value: its status first, then a dataAbsentReason."""
    reason, note = _status_reason(obs, label)
    if reason is None:
        reason, note = _absent_reason(obs, label)
    return reason, note
