"""Performance of a fixed model artifact on a cohort: discrimination, calibration, Brier score.

Nothing is refitted: the artifact's coefficients and baselines predict every patient of the
cohort (a hospital's own data, or a reconstruction), and the predictions are compared with what
happened. This is what `python -m models report --artifact ... --data ...` shows.

- Primary-resistance model (logistic): AUC with a percentile bootstrap CI; calibration-in-the-
  large (the intercept of a logistic regression of the outcome with the model's logit as offset:
  0 is right, > 0 means the model predicts too little) and calibration slope (the coefficient of
  the model's logit: 1 is right, < 1 means predictions too extreme), both with Wald CIs; Brier
  score with a bootstrap CI, beside the Brier score of predicting the cohort's own rate to
  everyone (a model is useful only below it).
- Second-line Cox models (PFS, OS): Harrell's C with a percentile bootstrap CI; calibration
  slope (the Cox coefficient of the model's linear predictor on this cohort); calibration-in-
  the-large as observed / expected events (expected = each patient's predicted cumulative hazard
  over their follow-up, up to the artifact's training follow-up; CI from the Poisson count of
  observed events); observed (Kaplan-Meier) vs mean predicted survival at 6 and 12 months; and
  the Brier score at those times with inverse-probability-of-censoring weights (Graf et al.),
  beside that of the cohort's Kaplan-Meier curve given to everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models._stats import Z_95, harrell_c, logistic_irls
from models.artifacts import BundleArtifact, CoxArtifact
from models.survival import second_line_frame

EVALUATION_RESAMPLES = 500
EVALUATION_SEED = 20250101
HORIZONS_MONTHS = (6, 12)


@dataclass
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None
    how: str = ""  # how the CI was obtained

    def text(self, fmt: str = "{:.3f}") -> str:
        if self.value is None or not np.isfinite(self.value):
            return "not estimable"
        if self.low is None:
            return fmt.format(self.value)
        return f"{fmt.format(self.value)} ({fmt.format(self.low)} to {fmt.format(self.high)})"


def _expit(v: np.ndarray) -> np.ndarray:
    probability: np.ndarray = 1.0 / (1.0 + np.exp(-v))
    return probability


def _percentile_ci(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC: P(a primary-resistance patient scores higher) + P(tie) / 2, from
    mid-ranks (O(n log n): a hospital cohort may have thousands of patients)."""
    from scipy.stats import rankdata

    n_cases = int(y.sum())
    n_controls = len(y) - n_cases
    if not n_cases or not n_controls:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_cases * (n_cases + 1) / 2) / (n_cases * n_controls))


def evaluate_resistance(
    artifact: BundleArtifact, cohort: pd.DataFrame, n_boot: int = EVALUATION_RESAMPLES, seed: int = EVALUATION_SEED
) -> dict[str, Any]:
    art = artifact.resistance
    X = cohort[list(art.features)].to_numpy(dtype=float)
    y = (cohort["resistance"] == "primary").to_numpy(dtype=int)
    logit = art.intercept + X @ np.asarray(art.coefficients)
    p = _expit(logit)
    rng = np.random.default_rng(seed)
    boot_auc, boot_brier = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boot_auc.append(_auc(logit[idx], y[idx]))
        boot_brier.append(float(np.mean((p[idx] - y[idx]) ** 2)))

    citl, citl_cov = logistic_irls(np.ones((len(y), 1)), y, offset=logit)
    citl_se = float(np.sqrt(citl_cov[0, 0]))
    if np.ptp(logit) > 0:
        slope, slope_cov = logistic_irls(np.column_stack([np.ones(len(y)), logit]), y)
        slope_se = float(np.sqrt(slope_cov[1, 1]))
        slope_est = Estimate(
            float(slope[1]), float(slope[1] - Z_95 * slope_se), float(slope[1] + Z_95 * slope_se), "Wald"
        )
    else:  # one covariate pattern only: every patient gets the same prediction
        slope_est = Estimate(None)

    patterns = []
    for pattern in sorted({tuple(row) for row in X.astype(int).tolist()}):
        members = np.all(X == np.asarray(pattern), axis=1)
        patterns.append(
            {
                "pattern": dict(zip(art.features, (bool(v) for v in pattern), strict=True)),
                "n": int(members.sum()),
                "predicted": float(p[members][0]),
                "observed": float(y[members].mean()),
            }
        )
    rate = float(y.mean())
    return {
        "n": int(len(y)),
        "events": int(y.sum()),
        "auc": Estimate(_auc(logit, y), *_percentile_ci(boot_auc), f"bootstrap, {n_boot} resamples"),
        "calibration_in_the_large": Estimate(
            float(citl[0]), float(citl[0] - Z_95 * citl_se), float(citl[0] + Z_95 * citl_se), "Wald"
        ),
        "calibration_slope": slope_est,
        "brier": Estimate(float(np.mean((p - y) ** 2)), *_percentile_ci(boot_brier), f"bootstrap, {n_boot} resamples"),
        "brier_base_rate": rate * (1 - rate),
        "observed_rate": rate,
        "mean_predicted": float(p.mean()),
        "patterns": patterns,
    }


def _step(times: np.ndarray, values: np.ndarray, t: np.ndarray | float, before: float) -> np.ndarray:
    """A right-continuous step function (value `before` until the first time) at t."""
    i = np.searchsorted(times, np.asarray(t, dtype=float), side="right") - 1
    return np.where(i >= 0, values[np.clip(i, 0, None)], before)


def _km(durations: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier curve as (times, survival) at each distinct time."""
    times = np.unique(durations)
    at_risk = np.array([(durations >= t).sum() for t in times])
    died = np.array([((durations == t) & (events == 1)).sum() for t in times])
    return times, np.cumprod(1.0 - died / at_risk)


def ipcw_brier(durations: np.ndarray, events: np.ndarray, predicted: np.ndarray, t: float) -> float:
    """Brier score at t of predicted survival probabilities, weighted by the inverse probability
    of remaining uncensored (Graf et al. 1999; censoring by the Kaplan-Meier of the censorings)."""
    g_times, g_surv = _km(durations, 1 - events)
    g_at_t = float(_step(g_times, g_surv, t, 1.0))
    g_before = _step(g_times, g_surv, durations - 1e-9, 1.0)
    died_by_t = (durations <= t) & (events == 1)
    alive_at_t = durations > t
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(died_by_t, predicted**2 / g_before, 0.0) + np.where(
            alive_at_t, (1 - predicted) ** 2 / g_at_t, 0.0
        )
    return float(np.mean(terms))


def _cox_slope(durations: np.ndarray, events: np.ndarray, lp: np.ndarray) -> Estimate:
    if np.ptp(lp) == 0:
        return Estimate(None)
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"t": durations, "e": events, "lp": lp})
    try:
        fit = CoxPHFitter().fit(frame, duration_col="t", event_col="e")
    except Exception:  # lifelines raises its own convergence errors on degenerate data
        return Estimate(None)
    value, se = float(fit.params_["lp"]), float(fit.standard_errors_["lp"])
    return Estimate(value, value - Z_95 * se, value + Z_95 * se, "Wald")


def evaluate_cox(
    art: CoxArtifact, sl: pd.DataFrame, n_boot: int = EVALUATION_RESAMPLES, seed: int = EVALUATION_SEED
) -> dict[str, Any]:
    endpoint = art.endpoint
    T = sl[f"sl_{endpoint}_months"].to_numpy(dtype=float)
    E = sl[f"sl_{endpoint}_event"].to_numpy(dtype=int)
    lp = sl[list(art.covariates)].to_numpy(dtype=float) @ np.asarray(art.coefficients)
    risk = np.exp(lp)
    base_t = np.asarray(art.baseline.times, dtype=float)
    base_h = np.asarray(art.baseline.cum_hazard, dtype=float)

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(T), len(T))
        if E[idx].sum() >= 2:
            boots.append(harrell_c(T[idx], lp[idx], E[idx]))

    # observed vs expected events over the follow-up the artifact's baseline covers
    horizon = min(art.max_time, float(T.max()))
    followed = np.minimum(T, art.max_time)
    observed = int(((T <= art.max_time) & (E == 1)).sum())
    expected = float((_step(base_t, base_h, followed, 0.0) * risk).sum())
    if observed > 0 and expected > 0:
        ratio = observed / expected
        half = Z_95 / np.sqrt(observed)
        o_e = Estimate(ratio, ratio * np.exp(-half), ratio * np.exp(half), "Poisson")
    else:
        o_e = Estimate(None)

    km_t, km_s = _km(T, E)
    at: list[dict[str, Any]] = []
    for t in HORIZONS_MONTHS:
        if t > horizon:
            at.append({"months": t, "reached": False})
            continue
        predicted = np.exp(-float(_step(base_t, base_h, t, 0.0)) * risk)
        km_at_t = float(_step(km_t, km_s, t, 1.0))
        at.append(
            {
                "months": t,
                "reached": True,
                "observed_km": km_at_t,
                "mean_predicted": float(predicted.mean()),
                "brier": ipcw_brier(T, E, predicted, t),
                "brier_km": ipcw_brier(T, E, np.full(len(T), km_at_t), t),
            }
        )
    grid = np.linspace(0.0, horizon, 60)
    return {
        "endpoint": endpoint,
        "n": int(len(T)),
        "events": int(E.sum()),
        "c_index": Estimate(harrell_c(T, lp, E), *_percentile_ci(boots), f"bootstrap, {n_boot} resamples"),
        "calibration_slope": _cox_slope(T, E, lp),
        "observed_events": observed,
        "expected_events": expected,
        "observed_over_expected": o_e,
        "horizon_months": horizon,
        "at": at,
        "curve": {
            "months": grid.tolist(),
            "observed_km": _step(km_t, km_s, grid, 1.0).tolist(),
            "mean_predicted": np.exp(-np.outer(_step(base_t, base_h, grid, 0.0), risk)).mean(axis=1).tolist(),
        },
    }


def evaluate_artifact(artifact: BundleArtifact, cohort: pd.DataFrame) -> dict[str, Any]:
    """Both models of `artifact` on a validated cohort table (`validate_training_frame`)."""
    sl = second_line_frame(cohort)
    return {
        "resistance": evaluate_resistance(artifact, cohort),
        "pfs": evaluate_cox(artifact.pfs, sl),
        "os": evaluate_cox(artifact.os, sl),
    }
