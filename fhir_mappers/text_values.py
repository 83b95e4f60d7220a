"""Numeric lab results that arrive as text (`valueString`), e.g. ">1210 ng/mL" or "＞1210ng/ml".

Laboratory systems, notably in Chinese hospitals, send results above or below the assay's range
as text: the analyser reports ">1210" and the interface cannot put that in a valueQuantity. Such a
string is read only when it is exactly one number with an optional comparator and an optional
unit; anything else (ranges, two numbers, qualitative words such as 阴性 "negative", a number
inside a sentence) is not a measurement this module will guess at, and is reported as unreadable.
The unit is converted by the same code as a valueQuantity's, so an unknown unit is refused the
same way.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

# FHIR Quantity.comparator codes; the text forms a laboratory system may print for each.
# NFKC folds the full-width forms (＞ ＜ ＝) to ASCII first; ≥ and ≤ survive NFKC and are listed.
_COMPARATOR_TEXT = {">": ">", "<": "<", ">=": ">=", "<=": "<=", "≥": ">=", "≤": "<=", "=>": ">=", "=<": "<="}

_RESULT = re.compile(
    r"""^
    (?P<comparator>>=|<=|=>|=<|>|<|≥|≤)?
    \s*
    (?P<number>\d+(?:\.\d+)?)
    \s*
    (?P<unit>(?:[A-Za-z%{]|10[*^])\S*)?  # UCUM-like: a letter, %, an annotation or a power of ten
    $""",
    re.VERBOSE,
)


class TextQuantity(NamedTuple):
    """A result read from text, shaped like the valueQuantity fields the mapper reads."""

    value: float
    comparator: str | None
    unit: str | None


def parse_quantity_text(text: str) -> TextQuantity | None:
    """One number, an optional comparator and an optional unit; None for anything else."""
    folded = unicodedata.normalize("NFKC", text).strip()
    if not folded.replace("≥", "").replace("≤", "").isascii():
        # Units are ASCII (UCUM or its usual free-text forms); a non-ASCII letter after NFKC
        # means words, e.g. "大于1210" or "1210 (复查)", which are not read.
        return None
    match = _RESULT.match(folded)
    if match is None:
        return None
    comparator = match["comparator"]
    return TextQuantity(
        value=float(match["number"]),
        comparator=_COMPARATOR_TEXT[comparator] if comparator else None,
        unit=match["unit"],
    )
