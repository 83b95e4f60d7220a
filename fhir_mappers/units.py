"""Unit conversion to the units the models use (UCUM codes first, free-text units second).

Model units:
    AFP        ng/mL      IU/mL x 1.21 ng/IU. 1.21 is the conversion factor of the WHO
                          1st International Standard for AFP (72/225): 1 IU = 1.21 ng.
    ALT, AST   U/L        1 ukat/L = 60 U/L (1 U = 1 umol/min; 1 ukat = 1 umol/s).
    bilirubin  umol/L     1 mg/dL = 17.1 umol/L (molar mass of bilirubin 584.7 g/mol).
    albumin    g/L        1 g/dL = 10 g/L.
    platelets  10*9/L     1 10*3/uL = 1 10*9/L.
    INR        1          unitless.
    tumour     cm         1 mm = 0.1 cm.
These are unit definitions, not clinical thresholds.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from fhir_mappers.notes import Note

UCUM_SYSTEM = "http://unitsofmeasure.org"
AFP_NG_PER_IU = 1.21  # WHO International Standard 72/225

MODEL_UNITS = {
    "afp": "ng/mL",
    "alt": "U/L",
    "ast": "U/L",
    "bilirubin": "umol/L",
    "albumin": "g/L",
    "platelets": "10*9/L",
    "inr": "1",
    "tumour_size": "cm",
}


# Plausibility, in model units: outside these bounds a value is a data error, never a measurement.
# Lower bounds are physical: a concentration, an activity or a count cannot be negative, and an
# INR, an albumin or a tumour diameter of zero describes no living patient (`zero_allowed`).
# Upper bounds are project bounds set far above any value reported in patients, so that only
# errors (a unit slip, 1e308) fall outside them; they are not clinical thresholds and are marked
# unverified in docs/clinical-safety.md.
class PlausibleRange(NamedTuple):
    high: float
    zero_allowed: bool


PLAUSIBLE = {
    "afp": PlausibleRange(1e7, True),  # ng/mL
    "alt": PlausibleRange(1e5, True),  # U/L
    "ast": PlausibleRange(1e5, True),  # U/L
    "bilirubin": PlausibleRange(1710.0, True),  # umol/L (100 mg/dL)
    "albumin": PlausibleRange(100.0, False),  # g/L
    "platelets": PlausibleRange(5000.0, True),  # 10*9/L
    "inr": PlausibleRange(30.0, False),
    "tumour_size": PlausibleRange(50.0, False),  # cm
}


def implausible(feature: str, value: float) -> str | None:
    """Why `value` (in the model unit) cannot be a real measurement, or None when it can."""
    bounds = PLAUSIBLE[feature]
    if value < 0 or (value == 0 and not bounds.zero_allowed):
        return Note(
            "mapper.impossible", "%(value)s is not physiologically possible", value=f"{value:g} {MODEL_UNITS[feature]}"
        )
    if value > bounds.high:
        return Note(
            "mapper.above_maximum",
            "%(value)s is above the plausible maximum of %(high)s",
            value=f"{value:g} {MODEL_UNITS[feature]}",
            high=f"{bounds.high:g}",
        )
    return None


_ENZYME = {"u/l": 1.0, "iu/l": 1.0, "ukat/l": 60.0, "mu/ml": 1.0}
# normalised unit -> factor to the model unit
FACTORS: dict[str, dict[str, float]] = {
    "afp": {
        "ng/ml": 1.0,
        "ug/l": 1.0,
        "ng/l": 0.001,
        "ug/ml": 1000.0,
        "mg/l": 1000.0,
        "iu/ml": AFP_NG_PER_IU,
        "kiu/l": AFP_NG_PER_IU,
        "ku/l": AFP_NG_PER_IU,  # AFP kU/L reported against the WHO IU standard
        "iu/l": AFP_NG_PER_IU / 1000.0,
    },
    "alt": _ENZYME,
    "ast": _ENZYME,
    "bilirubin": {"umol/l": 1.0, "mg/dl": 17.1, "mg/l": 1.71, "mmol/l": 1000.0},
    "albumin": {"g/l": 1.0, "g/dl": 10.0, "mg/dl": 0.01, "mg/ml": 1.0},
    "platelets": {
        "10*9/l": 1.0,
        "10*3/ul": 1.0,
        "10*3/mm3": 1.0,
        "/nl": 1.0,
        "k/ul": 1.0,
        "g/l": 1.0,  # giga per litre as written on many European reports ("G/L")
        "/ul": 0.001,
        "/mm3": 0.001,
        "10*6/ml": 1.0,
    },
    "inr": {"1": 1.0, "": 1.0, "inr": 1.0, "ratio": 1.0},
    "tumour_size": {"cm": 1.0, "mm": 0.1, "m": 100.0},
}


def normalise_unit(unit: str) -> str:
    """Fold the spellings EHRs use onto one key: case, micro signs, brackets, powers."""
    u = unit.strip().lower().replace(" ", "")
    u = u.replace("µ", "u").replace("μ", "u")
    u = re.sub(r"mc(?=g|l|mol|kat)", "u", u)  # mcg, mcL, mcmol, mckat
    u = u.replace("[", "").replace("]", "").replace("{", "").replace("}", "")
    u = u.replace("^", "*").replace("x10*", "10*").replace("x10e", "10*").replace("10e", "10*")
    u = u.replace("litre", "l").replace("liter", "l")
    return u


def convert(
    feature: str, value: float, code: str | None, system: str | None, unit_text: str | None
) -> tuple[float, str] | None:
    """Value in the model unit, and the unit string it was recognised by; None if unknown.

    Tries valueQuantity.code when its system is UCUM, then the human-readable unit.
    """
    found = _factor(
        feature,
        code if isinstance(code, str) else None,
        system if isinstance(system, str) else None,
        unit_text if isinstance(unit_text, str) else None,
    )
    return None if found is None else (value * found[0], found[1])


@lru_cache(maxsize=2048)
def _factor(feature: str, code: str | None, system: str | None, unit_text: str | None) -> tuple[float, str] | None:
    """Factor to the model unit and the unit string it was recognised by; cached because every
    call meets the same few units."""
    table = FACTORS[feature]
    candidates: list[str] = []
    if isinstance(code, str) and isinstance(system, str) and system.rstrip("/") == UCUM_SYSTEM:
        candidates.append(code)
    if isinstance(unit_text, str):
        candidates.append(unit_text)
    if isinstance(code, str) and code not in candidates:
        candidates.append(code)  # a code without the UCUM system is still a hint
    if feature == "inr" and not candidates:
        candidates.append("")
    for candidate in candidates:
        factor = table.get(normalise_unit(candidate))
        if factor is not None:
            return factor, candidate
    return None
