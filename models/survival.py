"""Second-line survival: Cox PH models for PFS and OS after sorafenib failure, and the
Kaplan-Meier reference curves of the (reconstructed or hospital) cohort.

`SecondLineCoxModel` mirrors lifelines: `fit(df)`, `summary`, `predict_survival(...)`. Fitting
uses lifelines' CoxPHFitter for the coefficients and their covariance; the Breslow baseline and
the pieces of its variance are computed here (`_stats.breslow_baseline`) so that a JSON
artifact carries everything needed for survival curves with confidence bands, no refitting.
Training and reports import this module; serving predicts with `models.registry` alone.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import NotFittedError

from models._progress import Progress
from models._stats import Z_95, breslow_baseline
from models.registry import PATIENT_COVARIATES, SurvivalCurveEngine, SurvivalEstimate

PFS_COVARIATES = ("multiple_tumours", "primary_resistance", "tki_alone", "tumour_size_over_5cm")
OS_COVARIATES = ("primary_resistance", "tki_alone", "tumour_size_over_5cm")
COVARIATES = {"pfs": PFS_COVARIATES, "os": OS_COVARIATES}


def second_line_frame(cohort: pd.DataFrame) -> pd.DataFrame:
    """Second-line patients with the Cox covariates derived from the cohort columns."""
    sl = cohort[cohort["second_line_regimen"].fillna("").astype(str) != ""].copy()
    sl["primary_resistance"] = (sl["resistance"] == "primary").astype(int)
    sl["tki_alone"] = (sl["second_line_regimen"] == "tki").astype(int)
    for col in ("sl_pfs_months", "sl_os_months"):
        sl[col] = sl[col].astype(float)
    for col in ("sl_pfs_event", "sl_os_event", "multiple_tumours", "tumour_size_over_5cm"):
        sl[col] = sl[col].astype(int)
    return sl.reset_index(drop=True)


class SecondLineCoxModel:
    """Cox PH model for one endpoint ('pfs' or 'os') measured from second-line start."""

    def __init__(self, endpoint: str, covariates: tuple[str, ...] | None = None):
        self.endpoint = endpoint
        self.covariates = covariates or COVARIATES[endpoint]

    @property
    def duration_col(self) -> str:
        return f"sl_{self.endpoint}_months"

    @property
    def event_col(self) -> str:
        return f"sl_{self.endpoint}_event"

    def fit(self, df: pd.DataFrame) -> SecondLineCoxModel:
        """df: second-line patients with the covariates, duration and event columns."""
        from lifelines import CoxPHFitter
        from lifelines.utils import concordance_index

        data = df[[*self.covariates, self.duration_col, self.event_col]].astype(float)
        cph = CoxPHFitter()
        cph.fit(data, duration_col=self.duration_col, event_col=self.event_col)
        self.coef_ = cph.params_[list(self.covariates)].to_numpy()
        self.covariance_ = cph.variance_matrix_.loc[list(self.covariates), list(self.covariates)].to_numpy()
        self._set_baseline(data)
        risk = data[list(self.covariates)].to_numpy() @ self.coef_
        self.c_index_ = float(concordance_index(data[self.duration_col], -risk, data[self.event_col]))
        return self

    def recalibrate(self, df: pd.DataFrame) -> SecondLineCoxModel:
        """Keep the coefficients (and their covariance), re-estimate the baseline on df."""
        self._check_fitted()
        from lifelines.utils import concordance_index

        data = df[[*self.covariates, self.duration_col, self.event_col]].astype(float)
        self._set_baseline(data)
        risk = data[list(self.covariates)].to_numpy() @ self.coef_
        self.c_index_ = float(concordance_index(data[self.duration_col], -risk, data[self.event_col]))
        return self

    def _set_baseline(self, data: pd.DataFrame) -> None:
        Z = data[list(self.covariates)].to_numpy()
        base = breslow_baseline(data[self.duration_col].to_numpy(), data[self.event_col].to_numpy(), Z, self.coef_)
        self.baseline_ = base
        self.n_ = int(len(data))
        self.events_ = int(data[self.event_col].sum())
        self.max_time_ = float(data[self.duration_col].max())

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"SecondLineCoxModel({self.endpoint!r}) is not fitted")

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients, hazard ratios and 95% CIs, one row per covariate (lifelines-like)."""
        self._check_fitted()
        se = np.sqrt(np.diag(self.covariance_))
        return pd.DataFrame(
            {
                "coef": self.coef_,
                "se(coef)": se,
                "exp(coef)": np.exp(self.coef_),
                "exp(coef) lower 95%": np.exp(self.coef_ - Z_95 * se),
                "exp(coef) upper 95%": np.exp(self.coef_ + Z_95 * se),
            },
            index=pd.Index(self.covariates, name="covariate"),
        )

    def curve_engine(self) -> SurvivalCurveEngine:
        self._check_fitted()
        return SurvivalCurveEngine(
            covariates=self.covariates,
            coef=self.coef_,
            covariance=self.covariance_,
            times=self.baseline_["times"],
            cum_hazard=self.baseline_["cum_hazard"],
            var_martingale=self.baseline_["var_martingale"],
            cov_term=self.baseline_["cov_term"],
            max_time=self.max_time_,
        )

    def predict_survival(self, x: dict[str, float]) -> SurvivalEstimate:
        """Survival estimate for one fully specified covariate vector."""
        return self.curve_engine().estimate([(1.0, x)])


def evaluate_c_index(
    model: SecondLineCoxModel, df: pd.DataFrame, n_boot: int = 200, seed: int = 0, progress: Progress | None = None
) -> dict[str, Any]:
    """Harrell's C: apparent, percentile bootstrap CI, and optimism-corrected (Harrell's
    bootstrap: refit on each resample, C on the resample minus C on the original data).
    The refits use the lean Newton-Raphson Cox (`_stats.cox_newton`) and `_stats.harrell_c`."""
    from lifelines.utils import concordance_index

    from models._stats import cox_newton, harrell_c

    Z = df[list(model.covariates)].to_numpy(dtype=float)
    T = df[model.duration_col].to_numpy(dtype=float)
    E = df[model.event_col].to_numpy(dtype=int)
    apparent = float(concordance_index(T, -(Z @ model.coef_), E))
    rng = np.random.default_rng(seed)
    boots, optimism = [], []
    iterator = range(n_boot)
    for _ in progress(iterator, f"bootstrap C-index ({model.endpoint})") if progress else iterator:
        idx = rng.integers(0, len(T), len(T))
        if E[idx].sum() < 2:
            continue
        try:
            beta = cox_newton(T[idx], E[idx], Z[idx])
        except np.linalg.LinAlgError:
            continue
        if not np.all(np.isfinite(beta)):
            continue
        c_boot = harrell_c(T[idx], Z[idx] @ beta, E[idx])
        boots.append(c_boot)
        optimism.append(c_boot - harrell_c(T, Z @ beta, E))
    if not boots:  # every refit separated: a covariate level has no events (e.g. a small cohort)
        raise ValueError(
            f"{model.endpoint.upper()} Cox model: no bootstrap resample could be refitted (a covariate level "
            "has no events), so its C-index cannot be validated"
        )
    low, high = np.percentile(boots, [2.5, 97.5])
    return {
        "c_index_harrell_apparent": apparent,
        "c_index_bootstrap_ci": [float(low), float(high)],
        "c_index_optimism_corrected": float(apparent - np.mean(optimism)),
        "bootstrap_resamples": len(boots),
        "seed": seed,
    }


def covariate_patterns(sl: pd.DataFrame) -> list[dict[str, Any]]:
    """Counts of each combination of the patient-level covariates among training patients:
    the distribution an unknown covariate is marginalised over."""
    counts = sl.groupby(list(PATIENT_COVARIATES)).size()
    rows = []
    for combo in product((0, 1), repeat=len(PATIENT_COVARIATES)):
        rows.append(
            {**dict(zip(PATIENT_COVARIATES, (bool(v) for v in combo), strict=True)), "n": int(counts.get(combo, 0))}
        )
    return rows


# --- Kaplan-Meier reference curves --------------------------------------------------------------


def km_curve(
    durations: ArrayLike, events: ArrayLike, label: str, endpoint: str, group: dict[str, str]
) -> dict[str, Any]:
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    times, observed = np.asarray(durations, float), np.asarray(events, int)
    kmf = KaplanMeierFitter(label=label).fit(times, observed)
    ci = kmf.confidence_interval_
    med_ci = median_survival_times(ci)
    median = float(kmf.median_survival_time_)

    def finite(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    return {
        "label": label,
        "endpoint": endpoint,
        "group": group,
        "n": len(times),
        "events": int(np.sum(observed)),
        "median_months": finite(median),
        "median_ci": [finite(float(med_ci.iloc[0, 0])), finite(float(med_ci.iloc[0, 1]))],
        "times": kmf.survival_function_.index.to_numpy(dtype=float).tolist(),
        "survival": kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "low": ci.iloc[:, 0].to_numpy(dtype=float).tolist(),
        "high": ci.iloc[:, 1].to_numpy(dtype=float).tolist(),
    }


def reference_km_curves(cohort: pd.DataFrame) -> list[dict[str, Any]]:
    """OS from sorafenib start by resistance group; PFS and OS from second-line start by
    resistance group, by regimen and by both."""
    curves = []
    for group in ("primary", "secondary"):
        d = cohort[cohort["resistance"] == group]
        curves.append(
            km_curve(
                d["os_months"],
                d["os_event"],
                f"OS from sorafenib start, {group} resistance",
                "os_from_sorafenib",
                {"resistance": group},
            )
        )
    sl = second_line_frame(cohort)
    for endpoint in ("pfs", "os"):
        subgroups: list[dict[str, str]] = [{"resistance": g} for g in ("primary", "secondary")]
        subgroups += [{"regimen": r} for r in ("tki", "tki_pd1")]
        subgroups += [{"resistance": g, "regimen": r} for g in ("primary", "secondary") for r in ("tki", "tki_pd1")]
        for grp in subgroups:
            mask = np.ones(len(sl), dtype=bool)
            if "resistance" in grp:
                mask &= (sl["resistance"] == grp["resistance"]).to_numpy()
            if "regimen" in grp:
                mask &= (sl["second_line_regimen"] == grp["regimen"]).to_numpy()
            d = sl[mask]
            if len(d) == 0:
                continue
            label = f"{endpoint.upper()} from second-line start, " + ", ".join(f"{k}={v}" for k, v in grp.items())
            curves.append(km_curve(d[f"sl_{endpoint}_months"], d[f"sl_{endpoint}_event"], label, f"sl_{endpoint}", grp))
    return curves
