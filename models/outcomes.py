"""What happened to a patient after sorafenib, read from FHIR resources: the outcomes the models
predict. Shared by training from a bulk export (models.fhir_import) and post-deployment
monitoring (cds_service.monitor), so both count an event the same way.

- primary resistance: radiological progression within the study's 3-month window after the
  sorafenib start (``fhir_mappers.patient.map_treatment_history``); no progression with follow-up
  past the window is secondary (or no) resistance; follow-up shorter than the window is pending;
- death: ``Patient.deceasedDateTime``; last contact: the latest date on any resource;
- second line: the first TKI or PD-1 inhibitor started on/after the first progression after
  sorafenib; TKI + PD-1 when a PD-1 inhibitor starts within SECOND_LINE_COMBINATION_DAYS of it;
  PFS = next progression or death, OS = death, both censored at last contact.

No pandas, scipy or scikit-learn: the monitoring job runs from the serving image.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from fhir_mappers.features import TreatmentHistory
from fhir_mappers.fhirdates import parse_fhir_date

SECOND_LINE_COMBINATION_DAYS = 30
DAYS_PER_MONTH = 365.25 / 12
DATE_ELEMENTS = (
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "abatementDateTime",
    "performedDateTime",
    "issued",
    "effectiveDateTime",
    "occurrenceDateTime",
    "date",
)
PERIOD_ELEMENTS = ("effectivePeriod", "performedPeriod", "period", "dispenseRequest")


def resource_dates(resource: dict[str, Any]) -> list[date]:
    """Every date a resource carries (earliest day of each), for the last contact."""
    found = []
    for element in DATE_ELEMENTS:
        parsed = parse_fhir_date(resource.get(element))
        if parsed is not None:
            found.append(parsed.earliest)
    for element in PERIOD_ELEMENTS:
        period = resource.get(element)
        if element == "dispenseRequest" and isinstance(period, dict):
            period = period.get("validityPeriod")
        if isinstance(period, dict):
            for bound in ("start", "end"):
                parsed = parse_fhir_date(period.get(bound))
                if parsed is not None:
                    found.append(parsed.earliest)
    return found


def months_between(start: date, end: date) -> float:
    return round((end - start).days / DAYS_PER_MONTH, 2)


def death_date(resources: Iterable[dict[str, Any]]) -> date | None:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    death = parse_fhir_date(patient.get("deceasedDateTime"))
    return death.earliest if death is not None else None


def last_contact(resources: Iterable[dict[str, Any]], start: date) -> date:
    """The latest date on any resource, not before ``start``."""
    return max([d for r in resources for d in resource_dates(r) if d >= start] + [start])


class SecondLine(BaseModel):
    model_config = ConfigDict(frozen=True)
    regimen: Literal["tki", "tki_pd1"]
    start: date
    pfs_months: float
    pfs_event: bool
    os_months: float
    os_event: bool


def second_line(history: TreatmentHistory, death: date | None, contact: date) -> SecondLine | None:
    """The second-line regimen and its PFS and OS, or None without a second line."""
    first_progression = history.first_progression_after_sorafenib.value
    if first_progression is None:
        return None
    tki = [
        e.start
        for e in history.other_tki_exposures + history.sorafenib_exposures
        if e.start is not None and e.start >= first_progression
    ]
    pd1 = [e.start for e in history.pd1_exposures if e.start is not None and e.start >= first_progression]
    candidates = sorted(tki + pd1)
    if not candidates:
        return None
    start = candidates[0]
    combined = any(0 <= (d - start).days <= SECOND_LINE_COMBINATION_DAYS for d in pd1)
    end = death if death is not None else contact
    later = [p.date for p in history.progressions if p.date > start]
    progression = min(later) if later else None
    if progression is not None and (death is None or progression <= death):
        pfs_months, pfs_event = months_between(start, progression), True
    else:
        pfs_months, pfs_event = months_between(start, end), death is not None
    return SecondLine(
        regimen="tki_pd1" if combined else "tki",
        start=start,
        pfs_months=pfs_months,
        pfs_event=pfs_event,
        os_months=months_between(start, end),
        os_event=death is not None,
    )


class FirstLine(BaseModel):
    """Primary resistance as observed: True, False, or None with the reason it is not known yet."""

    model_config = ConfigDict(frozen=True)
    sorafenib_start: date | None
    primary_resistance: bool | None
    unknown_because: str | None = None


def first_line(history: TreatmentHistory, death: date | None, contact: date | None) -> FirstLine:
    """Progression within the window is primary resistance; none, with follow-up (alive) past the
    window, is not. Death inside the window without a documented progression stays unknown: the
    study defined resistance radiologically, and no scan says which it was."""
    start = history.sorafenib_start.value
    if start is None:
        reason = history.sorafenib_start.missing.value if history.sorafenib_start.missing else "no sorafenib start"
        return FirstLine(sorafenib_start=None, primary_resistance=None, unknown_because=f"sorafenib start: {reason}")
    resistance = history.resistance_type.value
    if resistance is not None:
        return FirstLine(sorafenib_start=start, primary_resistance=resistance == "primary")
    missing = history.resistance_type.missing
    if missing is None or missing.value != "no_progression":
        return FirstLine(
            sorafenib_start=start,
            primary_resistance=None,
            unknown_because=f"resistance type: {missing.value if missing else 'unknown'}",
        )
    window_end = start + timedelta(days=history.primary_window_days)
    if death is not None and death <= window_end:
        return FirstLine(
            sorafenib_start=start,
            primary_resistance=None,
            unknown_because="died within 3 months without documented progression",
        )
    if contact is None or contact <= window_end:
        return FirstLine(
            sorafenib_start=start, primary_resistance=None, unknown_because="followed for less than 3 months"
        )
    return FirstLine(sorafenib_start=start, primary_resistance=False)
