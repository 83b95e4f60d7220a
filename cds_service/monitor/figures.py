"""The monitoring report: observations (prediction + what happened) → figures, subgroups, drift and
alerts. The statistics are ``models.monitoring``; this module decides what is compared with what.

- First line: each patient's earliest audited first-line estimate against primary resistance as
  observed (``models.outcomes.first_line``); patients whose outcome is not known yet are counted
  by reason, not guessed.
- Second line: each patient's earliest audited second-line estimate, for the regimen the patient
  actually started (read from FHIR), against Kaplan-Meier PFS and OS at 6 and 12 months.
- Drift: the first-line inputs of every audited patient (no outcome needed) against the training
  cohort of the model artifact in use (its calibration table: the joint AFP/ALT pattern counts).
- Alerts: the overall figures only, each against a ``CDS_MONITOR_*`` threshold, and only with
  ``CDS_MONITOR_MIN_PATIENTS`` or more patients; subgroups are shown, never alerted on (too small).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from models import monitoring
from models.artifacts import BundleArtifact
from models.monitoring import BinaryCalibration, Estimate, SurvivalCheck, SurvivalCurve
from models.outcomes import SecondLine

from ..settings import Settings

LANDMARK_MONTHS = (6, 12)
ENDPOINTS = {"pfs": "progression-free survival", "os": "overall survival"}
MARKERS = ("afp_over_400", "alt_over_40")
SUBGROUP_LABELS = {
    "aetiology": "Aetiology",
    "child_pugh": "Child-Pugh class",
    "sex": "Sex",
    "age_band": "Age (years)",
    "site": "Site",
}


@dataclass
class FirstLineObservation:
    predicted: float
    primary_resistance: bool
    subgroups: dict[str, str]


@dataclass
class SecondLineObservation:
    outcome: SecondLine
    predicted: dict[str, dict[int, float | None]]  # endpoint → months → predicted survival
    subgroups: dict[str, str]


@dataclass
class DriftObservation:
    month: str  # YYYY-MM of the assessment
    markers: tuple[bool, bool]  # afp_over_400, alt_over_40


@dataclass
class Observations:
    first_line: list[FirstLineObservation] = field(default_factory=list)
    second_line: list[SecondLineObservation] = field(default_factory=list)
    drift: list[DriftObservation] = field(default_factory=list)
    drift_missing_markers: int = 0
    unknown_outcomes: Counter[str] = field(default_factory=Counter)


class Alert(BaseModel):
    check: str
    title: str
    value: float | None
    threshold: float
    setting: str
    n: int
    judged: bool  # enough patients to judge
    tripped: bool
    rule: str


class SurvivalFigures(BaseModel):
    endpoint: str
    n: int
    events: int
    follow_up_months: float
    observed: SurvivalCurve
    checks: list[SurvivalCheck]


class SubgroupFigures(BaseModel):
    attribute: str
    value: str
    resistance: BinaryCalibration | None
    survival: dict[str, list[SurvivalCheck]]


class DriftPeriod(BaseModel):
    month: str
    n: int
    afp_share: Estimate
    alt_share: Estimate
    psi: float | None


class DriftFigures(BaseModel):
    reference: str
    reference_n: int
    reference_patterns: dict[str, float]  # "afp,alt" (0/1) → share
    reference_afp_share: float
    reference_alt_share: float
    n: int
    missing_markers: int
    afp_share: Estimate
    alt_share: Estimate
    psi: float | None
    by_month: list[DriftPeriod]


class FeedbackFigures(BaseModel):
    card_feedback: list[dict[str, Any]]
    override_reasons: list[dict[str, Any]]


class MonitorReport(BaseModel):
    generated_at: datetime
    since: datetime | None
    until: datetime | None
    fhir_server: str
    patient_source: str
    model_versions: dict[str, int]
    assessments: dict[str, int]  # scenario → audited assessments in the period
    matched_patients: int
    unmatched_patients: int
    unreadable_patients: int
    unknown_outcomes: dict[str, int]
    alerts: list[Alert]
    resistance: BinaryCalibration | None
    survival: dict[str, SurvivalFigures]
    subgroups: list[SubgroupFigures]
    drift: DriftFigures
    feedback: FeedbackFigures

    @property
    def tripped(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.tripped]


def predicted_survival(survival: Any, regimen: str) -> dict[str, dict[int, float | None]]:
    """The audited estimate for ``regimen``: endpoint → month → survival (None where not given)."""
    arm = survival.get(regimen) if isinstance(survival, dict) else None
    result: dict[str, dict[int, float | None]] = {}
    for endpoint in ENDPOINTS:
        at = (arm or {}).get(endpoint, {}).get("at_months", {}) if isinstance(arm, dict) else {}
        result[endpoint] = {}
        for months in LANDMARK_MONTHS:
            point = at.get(str(months), at.get(months)) if isinstance(at, dict) else None
            value = point.get("survival") if isinstance(point, dict) else None
            result[endpoint][months] = float(value) if isinstance(value, (int, float)) else None
    return result


def training_patterns(artifact: BundleArtifact) -> tuple[dict[tuple[bool, bool], int], int]:
    """(AFP > 400, ALT > 40) pattern → patients in the training cohort, from the artifact's
    calibration table (the apparent fit's table lists every pattern with its n)."""
    counts: dict[tuple[bool, bool], int] = {(a, b): 0 for a in (False, True) for b in (False, True)}
    for row in artifact.resistance.evaluation.calibration_table:
        pattern = row["pattern"]
        counts[(bool(pattern["afp_over_400"]), bool(pattern["alt_over_40"]))] += int(row["n"])
    return counts, sum(counts.values())


def _pattern_key(pattern: tuple[bool, bool]) -> str:
    return f"{int(pattern[0])},{int(pattern[1])}"


def drift_figures(observations: Observations, artifact: BundleArtifact) -> DriftFigures:
    reference, reference_n = training_patterns(artifact)
    order = sorted(reference)
    shares = [reference[p] / reference_n for p in order]

    def summarise(items: Sequence[DriftObservation]) -> tuple[Estimate, Estimate, float | None]:
        counts = Counter(item.markers for item in items)
        psi = monitoring.population_stability_index(shares, [counts[p] for p in order])
        afp = monitoring.wilson(sum(item.markers[0] for item in items), len(items))
        alt = monitoring.wilson(sum(item.markers[1] for item in items), len(items))
        return afp, alt, psi

    afp, alt, psi = summarise(observations.drift)
    months: dict[str, list[DriftObservation]] = {}
    for item in observations.drift:
        months.setdefault(item.month, []).append(item)
    by_month = []
    for month in sorted(months):
        m_afp, m_alt, m_psi = summarise(months[month])
        by_month.append(DriftPeriod(month=month, n=len(months[month]), afp_share=m_afp, alt_share=m_alt, psi=m_psi))
    return DriftFigures(
        reference=f"training cohort of model {artifact.metadata.model_version} "
        f"({artifact.metadata.training_data}), AFP/ALT patterns from the artifact's calibration table",
        reference_n=reference_n,
        reference_patterns={_pattern_key(p): reference[p] / reference_n for p in order},
        reference_afp_share=sum(reference[p] for p in order if p[0]) / reference_n,
        reference_alt_share=sum(reference[p] for p in order if p[1]) / reference_n,
        n=len(observations.drift),
        missing_markers=observations.drift_missing_markers,
        afp_share=afp,
        alt_share=alt,
        psi=psi,
        by_month=by_month,
    )


def _resistance(items: Sequence[FirstLineObservation]) -> BinaryCalibration | None:
    if not items:
        return None
    return monitoring.binary_calibration([int(i.primary_resistance) for i in items], [i.predicted for i in items])


def _survival(items: Sequence[SecondLineObservation], endpoint: str) -> SurvivalFigures | None:
    if not items:
        return None
    durations = [getattr(i.outcome, f"{endpoint}_months") for i in items]
    events = [int(getattr(i.outcome, f"{endpoint}_event")) for i in items]
    predicted = {float(m): [i.predicted[endpoint][m] for i in items] for m in LANDMARK_MONTHS}
    curve, checks = monitoring.survival_checks(durations, events, predicted)
    return SurvivalFigures(
        endpoint=endpoint,
        n=len(items),
        events=sum(events),
        follow_up_months=max(durations),
        observed=curve,
        checks=checks,
    )


def subgroup_figures(observations: Observations) -> list[SubgroupFigures]:
    result = []
    for attribute in SUBGROUP_LABELS:
        values = sorted(
            {o.subgroups[attribute] for o in observations.first_line}
            | {o.subgroups[attribute] for o in observations.second_line}
        )
        for value in values:
            first = [o for o in observations.first_line if o.subgroups[attribute] == value]
            second = [o for o in observations.second_line if o.subgroups[attribute] == value]
            survival = {}
            for endpoint in ENDPOINTS:
                figures = _survival(second, endpoint)
                if figures is not None:
                    survival[endpoint] = figures.checks
            result.append(
                SubgroupFigures(attribute=attribute, value=value, resistance=_resistance(first), survival=survival)
            )
    return result


def _alert(
    check: str, title: str, value: float | None, setting: str, settings: Settings, n: int, tripped: bool, rule: str
) -> Alert:
    judged = n >= settings.monitor_min_patients and value is not None
    return Alert(
        check=check,
        title=title,
        value=value,
        threshold=getattr(settings, setting),
        setting=f"CDS_{setting.upper()}",
        n=n,
        judged=judged,
        tripped=judged and tripped,
        rule=rule,
    )


def alerts(
    resistance: BinaryCalibration | None,
    survival: dict[str, SurvivalFigures],
    drift: DriftFigures,
    settings: Settings,
) -> list[Alert]:
    found = []
    if resistance is not None:
        intercept, slope, auc = resistance.calibration_intercept, resistance.calibration_slope, resistance.auc
        found.append(
            _alert(
                "resistance_calibration_intercept",
                "Primary resistance: calibration intercept (log-odds)",
                intercept.estimate,
                "monitor_calibration_intercept_max",
                settings,
                resistance.n,
                intercept.estimate is not None
                and abs(intercept.estimate) > settings.monitor_calibration_intercept_max
                and intercept.excludes(0.0),
                "|intercept| above the threshold and its 95% CI excludes 0",
            )
        )
        found.append(
            _alert(
                "resistance_calibration_slope",
                "Primary resistance: calibration slope",
                slope.estimate,
                "monitor_calibration_slope_min",
                settings,
                resistance.n,
                slope.estimate is not None
                and slope.estimate < settings.monitor_calibration_slope_min
                and slope.excludes(1.0),
                "slope below the threshold and its 95% CI excludes 1",
            )
        )
        found.append(
            _alert(
                "resistance_auc",
                "Primary resistance: AUC (upper 95% bound)",
                auc.high,
                "monitor_auc_min",
                settings,
                resistance.n,
                auc.high is not None and auc.high < settings.monitor_auc_min,
                "upper 95% bound of the AUC below the threshold",
            )
        )
    for endpoint, figures in survival.items():
        for check in figures.checks:
            difference = check.difference
            outside = check.predicted is not None and check.observed.excludes(check.predicted)
            found.append(
                _alert(
                    f"survival_{endpoint}_{check.months:g}m",
                    f"Second line: {ENDPOINTS[endpoint]} at {check.months:g} months, observed - predicted",
                    difference,
                    "monitor_survival_difference_max",
                    settings,
                    figures.n,
                    difference is not None and abs(difference) > settings.monitor_survival_difference_max and outside,
                    "|observed - predicted| above the threshold and the prediction outside the Kaplan-Meier 95% CI",
                )
            )
    for marker, share, reference in (
        ("afp", drift.afp_share, drift.reference_afp_share),
        ("alt", drift.alt_share, drift.reference_alt_share),
    ):
        difference = share.estimate - reference if share.estimate is not None else None
        label = "AFP > 400 ng/mL" if marker == "afp" else "ALT > 40 U/L"
        found.append(
            _alert(
                f"drift_{marker}_share",
                f"Input drift: share with {label}, minus the training share",
                difference,
                "monitor_marker_share_difference_max",
                settings,
                drift.n,
                difference is not None
                and abs(difference) > settings.monitor_marker_share_difference_max
                and share.excludes(reference),
                "|difference| above the threshold and the training share outside the 95% CI",
            )
        )
    found.append(
        _alert(
            "drift_psi",
            "Input drift: population stability index of the AFP/ALT patterns",
            drift.psi,
            "monitor_psi_max",
            settings,
            drift.n,
            drift.psi is not None and drift.psi > settings.monitor_psi_max,
            "PSI above the threshold",
        )
    )
    return found


def build_report(
    observations: Observations,
    artifact: BundleArtifact,
    settings: Settings,
    **context: Any,
) -> MonitorReport:
    """``context``: the report's fields that describe the run (period, counts, feedback)."""
    resistance = _resistance(observations.first_line)
    survival = {
        endpoint: figures
        for endpoint in ENDPOINTS
        if (figures := _survival(observations.second_line, endpoint)) is not None
    }
    drift = drift_figures(observations, artifact)
    return MonitorReport(
        unknown_outcomes=dict(observations.unknown_outcomes.most_common()),
        alerts=alerts(resistance, survival, drift, settings),
        resistance=resistance,
        survival=survival,
        subgroups=subgroup_figures(observations),
        drift=drift,
        **context,
    )
