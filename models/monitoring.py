"""Did the predictions come true? The statistics of post-deployment monitoring, numpy only.

The monitoring job runs from the serving image, which has no scipy, scikit-learn or lifelines:
everything here is closed-form or a Newton fit (``models._stats.logistic_irls``). Each function
takes plain arrays and returns pydantic models, so the report's JSON is their ``model_dump``.

Methods (standard references, cited in docs/monitoring.md):
- calibration intercept (calibration-in-the-large) and slope: logistic recalibration of the
  outcome on the model's logit (Cox 1958; Van Calster et al. 2019, the "weak calibration" level);
- AUC with DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988), Brier score;
- Kaplan-Meier with Greenwood's variance and a log(-log) band (Kalbfleisch & Prentice);
- proportions with Wilson's interval; the population stability index over fixed bins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from models._stats import Z_95, logistic_irls

# Share floored at this in the population stability index: an empty bin would make it infinite.
PSI_FLOOR = 1e-4


class Estimate(BaseModel):
    """A figure with its 95% confidence interval (None where it cannot be computed)."""

    model_config = ConfigDict(frozen=True)
    estimate: float | None
    low: float | None = None
    high: float | None = None

    def excludes(self, value: float) -> bool:
        """The interval lies wholly on one side of ``value`` (False when unknown)."""
        if self.low is None or self.high is None:
            return False
        return value < self.low or value > self.high


UNKNOWN = Estimate(estimate=None)


class CalibrationGroup(BaseModel):
    model_config = ConfigDict(frozen=True)
    n: int
    predicted: float  # mean predicted probability in the group
    observed: Estimate  # observed proportion, Wilson 95% CI


class BinaryCalibration(BaseModel):
    """How a predicted probability did against observed yes/no outcomes."""

    model_config = ConfigDict(frozen=True)
    n: int
    events: int
    observed_rate: Estimate
    mean_predicted: float | None
    observed_expected_ratio: float | None
    calibration_intercept: Estimate  # log-odds; 0 = right on average (slope fixed at 1)
    calibration_slope: Estimate  # 1 = risks spread as they should; < 1 = too extreme
    auc: Estimate
    brier: float | None
    curve: list[CalibrationGroup]


class SurvivalCurve(BaseModel):
    model_config = ConfigDict(frozen=True)
    times: list[float]
    survival: list[float]
    low: list[float]
    high: list[float]
    at_risk: list[int]


class SurvivalCheck(BaseModel):
    """Observed (Kaplan-Meier) against mean predicted survival at one time."""

    model_config = ConfigDict(frozen=True)
    months: float
    observed: Estimate  # None when follow-up does not reach this time
    predicted: float | None
    difference: float | None  # observed - predicted


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with Wilson's 95% score interval (sound near 0 and 1, unlike Wald's)."""
    if n <= 0:
        return UNKNOWN
    p = successes / n
    z2 = Z_95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Estimate(estimate=p, low=max(0.0, centre - half), high=min(1.0, centre + half))


def auc_delong(outcomes: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> Estimate:
    """The area under the ROC curve (ties count 1/2) with DeLong's 95% CI, clipped to [0, 1].
    Unknown without both outcomes present."""
    y = np.asarray(outcomes, dtype=bool)
    s = np.asarray(scores, dtype=float)
    cases, controls = s[y], s[~y]
    if len(cases) == 0 or len(controls) == 0:
        return UNKNOWN
    diff = cases[:, None] - controls[None, :]
    kernel = np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)  # placement values
    auc = float(v10.mean())
    if len(cases) < 2 or len(controls) < 2:
        return Estimate(estimate=auc)
    se = math.sqrt(float(np.var(v10, ddof=1)) / len(cases) + float(np.var(v01, ddof=1)) / len(controls))
    return Estimate(estimate=auc, low=max(0.0, auc - Z_95 * se), high=min(1.0, auc + Z_95 * se))


def brier_score(outcomes: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float | None:
    y, p = np.asarray(outcomes, dtype=float), np.asarray(predicted, dtype=float)
    return float(np.mean((p - y) ** 2)) if len(y) else None


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.asarray(np.log(p / (1 - p)))


def _fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None, index: int) -> Estimate:
    """One coefficient of a logistic fit with its Wald 95% CI; unknown when the fit diverges
    (all outcomes alike, or a predictor that separates them)."""
    try:
        beta, cov = logistic_irls(X, y, offset=offset)
    except np.linalg.LinAlgError:
        return UNKNOWN
    b, se = float(beta[index]), float(np.sqrt(cov[index, index]))
    if not (math.isfinite(b) and math.isfinite(se)) or abs(b) > 20:
        return UNKNOWN
    return Estimate(estimate=b, low=b - Z_95 * se, high=b + Z_95 * se)


def calibration_intercept(outcomes: np.ndarray, predicted: np.ndarray) -> Estimate:
    """Calibration-in-the-large: the intercept of logit P(y) = a + logit(p) (slope fixed at 1).
    Positive: events more frequent than predicted (a = log of the odds ratio observed/predicted)."""
    y = np.asarray(outcomes, dtype=float)
    if len(y) == 0 or y.min() == y.max():
        return UNKNOWN
    return _fit(np.ones((len(y), 1)), y, _logit(np.asarray(predicted, dtype=float)), 0)


def calibration_slope(outcomes: np.ndarray, predicted: np.ndarray) -> Estimate:
    """The slope b of logit P(y) = a + b logit(p); needs at least two distinct predictions."""
    y = np.asarray(outcomes, dtype=float)
    lp = _logit(np.asarray(predicted, dtype=float))
    if len(y) == 0 or y.min() == y.max() or np.ptp(lp) == 0:
        return UNKNOWN
    return _fit(np.column_stack([np.ones(len(y)), lp]), y, None, 1)


def calibration_curve(outcomes: np.ndarray, predicted: np.ndarray, max_groups: int = 10) -> list[CalibrationGroup]:
    """Observed proportion against mean prediction per group: one group per distinct prediction
    when there are at most ``max_groups`` (the first-line model has four), else quantile groups."""
    y = np.asarray(outcomes, dtype=int)
    p = np.asarray(predicted, dtype=float)
    if len(p) == 0:
        return []
    distinct = np.unique(p)
    if len(distinct) <= max_groups:
        labels = np.searchsorted(distinct, p)
    else:
        edges = np.quantile(p, np.linspace(0, 1, max_groups + 1)[1:-1])
        labels = np.searchsorted(edges, p, side="right")
    groups = []
    for label in np.unique(labels):
        members = labels == label
        groups.append(
            CalibrationGroup(
                n=int(members.sum()),
                predicted=float(p[members].mean()),
                observed=wilson(int(y[members].sum()), int(members.sum())),
            )
        )
    return groups


def binary_calibration(
    outcomes: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> BinaryCalibration:
    """Every figure of a risk model's performance on one set of patients."""
    y = np.asarray(outcomes, dtype=int)
    p = np.asarray(predicted, dtype=float)
    if len(y) != len(p):
        raise ValueError("outcomes and predictions differ in length")
    events = int(y.sum())
    mean_predicted = float(p.mean()) if len(p) else None
    return BinaryCalibration(
        n=len(y),
        events=events,
        observed_rate=wilson(events, len(y)),
        mean_predicted=mean_predicted,
        observed_expected_ratio=events / float(p.sum()) if len(p) and p.sum() > 0 else None,
        calibration_intercept=calibration_intercept(y, p),
        calibration_slope=calibration_slope(y, p),
        auc=auc_delong(y, p),
        brier=brier_score(y, p),
        curve=calibration_curve(y, p),
    )


def kaplan_meier(durations: Sequence[float] | np.ndarray, events: Sequence[int] | np.ndarray) -> SurvivalCurve:
    """Kaplan-Meier with Greenwood's variance and a 95% band on the log(-log) scale (inside
    (0, 1)); the curve starts at time 0 and steps at each event time."""
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    if np.any(t < 0):
        raise ValueError("negative follow-up time")
    times, survival, low, high, at_risk = [0.0], [1.0], [1.0], [1.0], [len(t)]
    s, greenwood = 1.0, 0.0
    for time in np.unique(t[e]):
        n = int(np.sum(t >= time))
        d = int(np.sum(e & (t == time)))
        s *= 1 - d / n
        greenwood += d / (n * (n - d)) if n > d else math.inf
        times.append(float(time))
        survival.append(s)
        at_risk.append(n)
        if 0 < s < 1 and math.isfinite(greenwood):
            se = math.sqrt(greenwood) / abs(math.log(s))
            low.append(s ** math.exp(Z_95 * se))
            high.append(s ** math.exp(-Z_95 * se))
        else:
            low.append(s if s == 0 else 0.0)
            high.append(s if s == 0 else 1.0)
    return SurvivalCurve(times=times, survival=survival, low=low, high=high, at_risk=at_risk)


def survival_at(curve: SurvivalCurve, months: float, durations: Sequence[float] | np.ndarray) -> Estimate:
    """The curve's value at ``months``; unknown when nobody was followed that long. Before the first
    event Greenwood's variance is 0: the interval is then Clopper-Pearson's for no event among the
    patients followed to ``months`` (lower bound 0.025^(1/n)), not the empty band (1, 1)."""
    t = np.asarray(durations, dtype=float)
    followed = int(np.sum(t >= months))
    if not len(t) or months > t.max():
        return UNKNOWN
    i = int(np.searchsorted(np.asarray(curve.times), months, side="right")) - 1
    if curve.survival[i] == 1.0:
        return Estimate(estimate=1.0, low=0.025 ** (1 / followed) if followed else 0.0, high=1.0)
    return Estimate(estimate=curve.survival[i], low=curve.low[i], high=curve.high[i])


def survival_checks(
    durations: Sequence[float] | np.ndarray,
    events: Sequence[int] | np.ndarray,
    predicted: Mapping[float, Sequence[float | None]],
) -> tuple[SurvivalCurve, list[SurvivalCheck]]:
    """Observed Kaplan-Meier survival against the mean of the patients' predicted survival at each
    time in ``predicted`` (time -> one prediction per patient; a None prediction is left out of
    the mean). Censoring is assumed independent of the prediction, as the KM itself assumes."""
    t = np.asarray(durations, dtype=float)
    curve = kaplan_meier(t, events)
    checks = []
    for months, values in sorted(predicted.items()):
        known = [v for v in values if v is not None]
        mean = float(np.mean(known)) if known else None
        observed = survival_at(curve, months, t)
        difference = observed.estimate - mean if observed.estimate is not None and mean is not None else None
        checks.append(SurvivalCheck(months=months, observed=observed, predicted=mean, difference=difference))
    return curve, checks


def population_stability_index(reference_shares: Sequence[float], counts: Sequence[int]) -> float | None:
    """PSI = sum (a - e) ln(a / e) over bins, a the observed and e the reference share, each
    floored at PSI_FLOOR; None without observations."""
    e = np.asarray(reference_shares, dtype=float)
    c = np.asarray(counts, dtype=float)
    if len(e) != len(c):
        raise ValueError("reference and observed bins differ in number")
    if c.sum() <= 0:
        return None
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
