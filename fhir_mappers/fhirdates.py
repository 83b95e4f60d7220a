"""FHIR date / dateTime / instant strings as date intervals.

A FHIR date may be a year ("2024"), a month ("2024-03"), a day, or a dateTime with a time and
offset. We keep the calendar date as written (no time-zone shift: the order date is a local
date too) and, for partial dates, the whole interval it could mean, so a comparison is only made
when it is decidable.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

# ASCII digits only (FHIR's regex): `\d` would also read Arabic-Indic or full-width digits as a date.
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?$", re.ASCII)


@dataclass(frozen=True)
class FhirDate:
    earliest: date
    latest: date
    precision: str  # "year" | "month" | "day"
    text: str

    @property
    def is_exact(self) -> bool:
        return self.precision == "day"


def parse_fhir_date(value: object) -> FhirDate | None:
    return _parse(value) if isinstance(value, str) else None


@lru_cache(maxsize=8192)
def _parse(value: str) -> FhirDate | None:
    """Cached: the same dates recur on every call, and a frozen FhirDate can be shared."""
    m = _DATE.match(value.strip())
    if not m:
        return None
    try:
        year = int(m.group(1))
        if m.group(3):
            d = date(year, int(m.group(2)), int(m.group(3)))
            return FhirDate(d, d, "day", value)
        if m.group(2):
            month = int(m.group(2))
            last = calendar.monthrange(year, month)[1]
            return FhirDate(date(year, month, 1), date(year, month, last), "month", value)
        return FhirDate(date(year, 1, 1), date(year, 12, 31), "year", value)
    except ValueError:
        return None


def effective_date(resource: dict[str, Any]) -> tuple[FhirDate, str] | None:
    """effectiveDateTime, effectivePeriod (start, else end), effectiveInstant, issued — in that
    order of preference. Returns the parsed date and the element it came from."""
    for element in ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"):
        raw = resource.get(element)
        if element == "effectivePeriod":
            if not isinstance(raw, dict):
                continue
            for bound in ("start", "end"):
                parsed = parse_fhir_date(raw.get(bound))
                if parsed is not None:
                    return parsed, f"effectivePeriod.{bound}"
            continue
        parsed = parse_fhir_date(raw)
        if parsed is not None:
            return parsed, element
    return None
