"""Reconstruct a synthetic patient-level cohort from the published aggregates of Lei et al. 2025.

This is synthetic data that reproduces published aggregates; it is not patient data. The method
and its assumptions are written up in models/README.md; each step below says what it matches.

Everything is driven by one numpy Generator seeded from ``seed``, so a seed gives one cohort.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hcc_evidence import Evidence, load_evidence
from models._stats import cox_newton, logistic_irls

# The default seed is the first seed (counting from 0) for which every check of the
# reproduction report passes (`python -m models report`); see README "Seed choice".
DEFAULT_SEED = 0

RESISTANCE_GROUPS = ("primary", "secondary")
REGIMENS = ("tki", "tki_pd1")
SL_COLUMNS = ["sl_pfs_months", "sl_pfs_event", "sl_os_months", "sl_os_event"]

# --- time to progression on sorafenib (= start of second line), derived ----------------------
# Progression is radiological (RECIST 1.1), so it is found at an imaging exam. The study images
# at baseline and then every 8-12 weeks (evidence brief, "Design"). Hence:
# * the first exam after baseline falls at 8-12 weeks (1.84-2.76 months), the second at 16-24
#   weeks (3.68-5.52 months) - so "progression within 3 months" (primary resistance) is exactly
#   "progression at the first exam", and secondary resistance is progression at exam 2 or later;
# * the published split gives the per-exam probability of progression at the first exam:
#   p = 165 / 424 = 0.389 (patients progressing at exam 1 / patients at risk of it);
# * named assumption (README "What cannot be matched"): the same per-exam probability at every
#   later exam (a constant hazard per imaging interval; the study publishes no first-line PFS
#   curve to tell otherwise). Then a secondary patient progresses at exam K >= 2 with
#   P(K = k) = (1 - p)^(k - 2) p: median K = 3 (3 intervals of 10 weeks on average = 6.9
#   months) and mean K = 1 + 1/p = 3.57 (8.2 months);
# * each interval is uniform on 8-12 weeks (the published range, no preferred value inside it).
# Only the gap between os_months and sl_os_months of second-line patients, and the censoring
# (follow-up starts counting losses at progression), depend on it; the os_months distribution of
# each group is matched to the published curves regardless (README step 6).
IMAGING_INTERVAL_WEEKS = (8.0, 12.0)
# Dependence between PFS and OS after second line (Gaussian copula); OS is then bounded below by PFS.
PFS_OS_COPULA_RHO = 0.8
# Weight of a published median in the parameter search: var(log median) ~ 1/d with d the
# events in that subgroup, approximated as this fraction of its patients.
MEDIAN_EVENT_FRACTION = 0.75
# Fixed-point rounds of the per-cell rescaling (last step of the second-line times).
CELL_ROUNDS = 30
DAYS_PER_MONTH = 365.25 / 12


def month_span(start: dt.date, end: dt.date) -> float:
    return (end - start).days / DAYS_PER_MONTH


def _month_bounds(evidence: Evidence) -> tuple[float, float, float]:
    """(shortest, longest) potential follow-up in months, and the enrolment length."""
    first = dt.date.fromisoformat(evidence.cohort.enrolment[0] + "-01")
    last_y, last_m = (int(p) for p in evidence.cohort.enrolment[1].split("-"))
    last = dt.date(last_y + (last_m == 12), last_m % 12 + 1, 1) - dt.timedelta(days=1)
    cut_y, cut_m = (int(p) for p in evidence.cohort.data_cutoff.split("-"))
    cutoff = dt.date(cut_y + (cut_m == 12), cut_m % 12 + 1, 1) - dt.timedelta(days=1)
    return month_span(last, cutoff), month_span(first, cutoff), month_span(first, last)


def imaging_interval_months() -> tuple[float, float]:
    lo, hi = IMAGING_INTERVAL_WEEKS
    return lo * 7 / DAYS_PER_MONTH, hi * 7 / DAYS_PER_MONTH


def progression_probability_per_exam(evidence: Evidence) -> float:
    """Share of patients progressing at the first imaging exam = primary resistance share."""
    return evidence.cohort.n_primary / evidence.cohort.n


def draw_progression_times(rng: np.random.Generator, is_primary: np.ndarray, evidence: Evidence) -> np.ndarray:
    """Months from sorafenib start to the imaging exam that found progression (see the block
    comment on IMAGING_INTERVAL_WEEKS): exam 1 for primary resistance, exam K >= 2 with
    K - 1 ~ Geometric(p) for secondary; each interval uniform on 8-12 weeks."""
    lo, hi = imaging_interval_months()
    window = evidence.cohort.primary_resistance_window_months
    assert hi < window < 2 * lo, "imaging schedule no longer separates the exams around the window"
    p = progression_probability_per_exam(evidence)
    n = len(is_primary)
    exams = np.where(is_primary, 1, 1 + rng.geometric(p, n))
    max_exams = int(exams.max())
    intervals = rng.uniform(lo, hi, (n, max_exams))
    upto = np.arange(max_exams)[None, :] < exams[:, None]
    months: np.ndarray = np.sum(intervals * upto, axis=1)
    return months


def _progression_quantiles(evidence: Evidence, m: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample of the time to progression on sorafenib, both groups mixed in the
    published proportions (deterministic: own generator with a fixed seed)."""
    rng = np.random.default_rng(0)
    n_primary = int(round(m * evidence.cohort.n_primary / evidence.cohort.n))
    is_primary = np.arange(m) < n_primary
    return draw_progression_times(rng, is_primary, evidence), np.full(m, 1.0 / m)


def dropout_rate(evidence: Evidence) -> float:
    """Rate of loss to follow-up (per month) that makes the reverse-KM median follow-up equal
    the published one. Censoring = min(administrative, dropout): administrative from uniform
    enrolment over the window to the cut-off (and after the progression that defines the
    group, which every patient was observed to reach); dropout = progression + Exponential(r).
    Solves P(censoring > t) = 1/2 at t = the published median follow-up."""
    a_min, a_max, _ = _month_bounds(evidence)
    t = evidence.cohort.median_follow_up_months
    prog, w = _progression_quantiles(evidence)
    low = np.maximum(a_min, prog + 0.5)
    p_admin = np.clip((a_max - t) / (a_max - low), 0, 1)

    def survival_of_censoring(r: float) -> float:
        p_drop = np.where(t <= prog, 1.0, np.exp(-r * np.maximum(t - prog, 0)))
        return float(np.sum(w * p_admin * p_drop))

    if survival_of_censoring(0.0) <= 0.5:
        return 0.0
    return float(optimize.brentq(lambda r: survival_of_censoring(r) - 0.5, 0.0, 5.0))


# --- step 1: binary features with Table 1 counts exactly ----------------------------------------


def _logit_or_for_cells(cells: np.ndarray) -> np.ndarray:
    """Fit resistance ~ afp + alt on a 2x2x2 table; cells[g, afp, alt] are counts."""
    X, y, w = [], [], []
    for g in (0, 1):  # 0 secondary, 1 primary
        for afp in (0, 1):
            for alt in (0, 1):
                X.append([1.0, afp, alt])
                y.append(g)
                w.append(cells[g, afp, alt])
    beta, _ = logistic_irls(np.array(X), np.array(y), np.array(w, dtype=float))
    return beta[1:]


def _batched_logit_or(secondary: np.ndarray, primary: np.ndarray) -> np.ndarray:
    """`_logit_or_for_cells` for many tables at once (Newton-Raphson, batched)."""
    X = np.array([[1.0, afp, alt] for afp in (0, 1) for alt in (0, 1)])  # cell order [afp, alt]
    n1 = primary.reshape(len(primary), 4)
    n0 = secondary.reshape(len(secondary), 4)
    total = n0 + n1
    beta = np.zeros((len(total), 3))
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-(beta @ X.T)))
        grad = (n1 - total * p) @ X
        info = np.einsum("bc,ci,cj->bij", total * p * (1 - p), X, X)
        beta = beta + np.linalg.solve(info, grad[..., None])[..., 0]
    return beta[:, 1:]


def afp_alt_joint_counts(evidence: Evidence) -> dict[str, int]:
    """Choose, per group, how many patients have both AFP > 400 and ALT > 40.

    Marginal counts are fixed by Table 1; the overlap is the one free integer per group. We
    take the pair of overlaps whose multivariable logistic ORs are closest (squared log
    distance) to the published 1.75 and 1.77. Deterministic: an exhaustive search.
    """
    t1 = evidence.table1_counts
    n = {"primary": evidence.cohort.n_primary, "secondary": evidence.cohort.n_secondary}
    a = {g: t1["afp_over_400"][i] for i, g in enumerate(RESISTANCE_GROUPS)}
    alt = {g: t1["alt_over_40"][i] for i, g in enumerate(RESISTANCE_GROUPS)}
    target = np.log(
        [
            evidence.resistance_model_multivariable["afp_over_400"].ratio,
            evidence.resistance_model_multivariable["alt_over_40"].ratio,
        ]
    )

    def cells_for(g: str, k: int) -> np.ndarray:
        return np.array([[n[g] - a[g] - alt[g] + k, alt[g] - k], [a[g] - k, k]], dtype=float)

    def k_range(g: str) -> range:
        return range(max(0, a[g] + alt[g] - n[g]), min(a[g], alt[g]) + 1)

    def association(c: np.ndarray) -> np.ndarray:
        log_or: np.ndarray = np.log(c[..., 1, 1] * c[..., 0, 0] / (c[..., 0, 1] * c[..., 1, 0]))
        return log_or

    pairs = np.array([(kp, ks) for kp in k_range("primary") for ks in k_range("secondary")])
    cp = np.stack([cells_for("primary", kp) for kp in pairs[:, 0]])
    cs = np.stack([cells_for("secondary", ks) for ks in pairs[:, 1]])
    keep = (cp.reshape(len(pairs), -1).min(axis=1) > 0) & (cs.reshape(len(pairs), -1).min(axis=1) > 0)
    pairs, cp, cs = pairs[keep], cp[keep], cs[keep]
    log_or = _batched_logit_or(cs, cp)
    # The ORs depend almost only on the total overlap, so many pairs fit about equally well;
    # a small penalty on unequal AFP-ALT association between the groups (the "no three-way
    # interaction" of a logistic model without an interaction term) picks one of them.
    dist = np.sum((log_or - target) ** 2, axis=1) + 1e-3 * (association(cp) - association(cs)) ** 2
    i = int(np.argmin(dist))
    return {"primary": int(pairs[i, 0]), "secondary": int(pairs[i, 1])}


def _fixed_count_column(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    column = np.zeros(n, dtype=int)
    column[:count] = 1
    return rng.permutation(column)


def _baseline_features(rng: np.random.Generator, evidence: Evidence) -> pd.DataFrame:
    overlap = afp_alt_joint_counts(evidence)
    frames = []
    for gi, group in enumerate(RESISTANCE_GROUPS):
        n = evidence.cohort.n_primary if group == "primary" else evidence.cohort.n_secondary
        cols: dict[str, np.ndarray] = {}
        for feature in evidence.table1_features:
            if feature in ("afp_over_400", "alt_over_40"):
                continue
            cols[feature] = _fixed_count_column(rng, n, evidence.table1_counts[feature][gi])
        a = evidence.table1_counts["afp_over_400"][gi]
        alt = evidence.table1_counts["alt_over_40"][gi]
        k = overlap[group]
        pairs = [(1, 1)] * k + [(1, 0)] * (a - k) + [(0, 1)] * (alt - k)
        pairs += [(0, 0)] * (n - len(pairs))
        pairs_arr = np.array(pairs)[rng.permutation(n)]
        cols["afp_over_400"] = pairs_arr[:, 0]
        cols["alt_over_40"] = pairs_arr[:, 1]
        frame = pd.DataFrame({"resistance": group, **{f: cols[f] for f in evidence.table1_features}})
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --- step 2: piecewise-exponential OS from sorafenib start, by group ----------------------------


@dataclass(frozen=True)
class PiecewiseSurvival:
    """Survival curve with log S linear between knots (piecewise-constant hazard); the last
    hazard continues past the last knot."""

    times: tuple[float, ...]
    survival: tuple[float, ...]

    def quantile_time(self, s: np.ndarray) -> np.ndarray:
        t = np.asarray(self.times)
        log_s = np.log(np.asarray(self.survival))
        target = np.log(np.asarray(s, dtype=float))
        inside = np.interp(-target, -log_s, t)
        slope = (log_s[-1] - log_s[-2]) / (t[-1] - t[-2])
        beyond = t[-1] + (target - log_s[-1]) / slope
        times: np.ndarray = np.where(target < log_s[-1], beyond, inside)
        return times


def os_target_curves(evidence: Evidence) -> dict[str, PiecewiseSurvival]:
    """Knots at 0, the published median and the 1/2/3-year landmarks of each group (and, for
    the secondary group, survival 1 up to the 3-month window that defines it)."""
    published = evidence.os_all_patients_by_resistance
    curves = {}
    for group in RESISTANCE_GROUPS:
        knots = {0.0: 1.0, float(published.median_months[group]): 0.5}
        if group == "secondary":
            # progression-free beyond the window by definition, so alive at it
            knots[float(evidence.cohort.primary_resistance_window_months)] = 1.0 - 1e-9
        for month, s in published.survival_at_months[group].items():
            knots[float(month)] = float(s)
        times = tuple(sorted(knots))
        curves[group] = PiecewiseSurvival(times, tuple(knots[t] for t in times))
    return curves


# --- step 3: second-line survival: Weibull proportional hazards ---------------------------------

PFS_COVARIATES = ("multiple_tumours", "primary_resistance", "tki_alone", "tumour_size_over_5cm")
OS_COVARIATES = ("primary_resistance", "tki_alone", "tumour_size_over_5cm")


def _published_medians(evidence: Evidence, endpoint: str) -> list[tuple[dict[str, str], float]]:
    """[(subgroup filter, published median)] for 'pfs' or 'os' after second line."""
    table = evidence.second_line.median_pfs_months if endpoint == "pfs" else evidence.second_line.median_os_months
    regimen_key = {"combination": "tki_pd1", "tki": "tki"}
    rows: list[tuple[dict[str, str], float]] = []
    for group, value in table["by_resistance"].items():
        rows.append(({"resistance": group}, value))
    for reg, value in table["all"].items():
        rows.append(({"regimen": regimen_key[reg]}, value))
    for group in RESISTANCE_GROUPS:
        for reg, value in table[group].items():
            rows.append(({"resistance": group, "regimen": regimen_key[reg]}, value))
    return rows


def second_line_design(frame: pd.DataFrame, covariates: tuple[str, ...]) -> np.ndarray:
    derived = {
        "primary_resistance": (frame["resistance"] == "primary").astype(float).to_numpy(),
        "tki_alone": (frame["second_line_regimen"] == "tki").astype(float).to_numpy(),
    }
    return np.column_stack([derived[c] if c in derived else frame[c].astype(float).to_numpy() for c in covariates])


def _subgroup_mask(frame: pd.DataFrame, filt: dict[str, str]) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    if "resistance" in filt:
        mask &= (frame["resistance"] == filt["resistance"]).to_numpy()
    if "regimen" in filt:
        mask &= (frame["second_line_regimen"] == filt["regimen"]).to_numpy()
    return mask


def _marginal_median_u(weights: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Per subgroup (rows of ``weights``, each summing to 1), the u solving
    sum_i w_i exp(-u exp(eta_i)) = 1/2, i.e. the baseline cumulative hazard at the subgroup's
    marginal median. Newton from u = 0 converges monotonically (f is convex, decreasing)."""
    e = np.exp(eta)[None, :]
    u = np.zeros((weights.shape[0], 1))
    for _ in range(100):
        s = np.exp(-u * e)
        f = np.sum(weights * s, axis=1, keepdims=True) - 0.5
        slope = -np.sum(weights * s * e, axis=1, keepdims=True)
        step = f / slope
        u = u - step
        if np.max(np.abs(step / u)) < 1e-12:
            break
    return u[:, 0]


def generating_design(frame: pd.DataFrame, covariates: tuple[str, ...]) -> np.ndarray:
    """The Cox covariates plus a primary x TKI-alone interaction column (last). The interaction
    lets the four resistance x regimen cells take their own published medians (the published
    ratios TKI-vs-combination differ by group: PFS 4.5/8.0 vs 9.0/18.0, OS 8.5/16.0 vs
    21.0/31.0), while the main effects keep the published Cox HRs (see fit_weibull_ph)."""
    X = second_line_design(frame, covariates)
    primary = (frame["resistance"] == "primary").to_numpy(dtype=float)
    tki = (frame["second_line_regimen"] == "tki").to_numpy(dtype=float)
    return np.column_stack([X, primary * tki])


def interaction_share(frame: pd.DataFrame, covariates: tuple[str, ...]) -> np.ndarray:
    """How much of the interaction a main-effects Cox model attributes to each covariate:
    to primary_resistance the share of TKI-alone patients, to tki_alone the share of primary
    patients (a first-order approximation; the calibration rounds correct the rest)."""
    share = np.zeros(len(covariates))
    for i, c in enumerate(covariates):
        if c == "primary_resistance":
            share[i] = float((frame["second_line_regimen"] == "tki").mean())
        elif c == "tki_alone":
            share[i] = float((frame["resistance"] == "primary").mean())
    return share


def fit_weibull_ph(sl: pd.DataFrame, evidence: Evidence, endpoint: str) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Generating parameters for one second-line endpoint: (beta with the primary x TKI
    interaction last, the main-effect log-HRs a Cox fit should return, [log lambda, log k]).

    Weighted least squares on the log scale against the published subgroup medians (weight
    ~ events) and the published Cox log-HRs (weight 1/SE^2, SE from the published 95% CI),
    medians computed by marginalising over this cohort's covariates. A main-effects Cox model
    fitted to data with an interaction returns roughly main effect + share x interaction, so
    that is what is compared with the published HRs.
    """
    covariates = PFS_COVARIATES if endpoint == "pfs" else OS_COVARIATES
    published = evidence.second_line.cox_multivariable[endpoint]
    b_pub = np.log([published[c].ratio for c in covariates])
    se_pub = np.array(
        [(np.log(published[c].high) - np.log(published[c].low)) / (2 * 1.959963984540054) for c in covariates]
    )
    X = generating_design(sl, covariates)
    share = interaction_share(sl, covariates)
    rows = _published_medians(evidence, endpoint)
    masks = np.array([_subgroup_mask(sl, f) for f, _ in rows], dtype=float)
    membership = masks / masks.sum(axis=1, keepdims=True)
    weights = MEDIAN_EVENT_FRACTION * masks.sum(axis=1)
    log_m = np.log([m for _, m in rows])

    def effective(beta: np.ndarray) -> np.ndarray:
        per_group: np.ndarray = beta[:-1] + share * beta[-1]
        return per_group

    def loss(theta: np.ndarray) -> float:
        beta, log_lam, log_k = theta[:-2], theta[-2], theta[-1]
        pred = np.log(_marginal_median_u(membership, X @ beta)) / np.exp(log_k) - log_lam
        return float(np.sum(weights * (pred - log_m) ** 2) + np.sum(((effective(beta) - b_pub) / se_pub) ** 2))

    start = np.concatenate([b_pub, [0.0], [-np.mean(log_m), 0.0]])
    result = optimize.minimize(
        loss, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 40000, "maxfev": 40000}
    )
    beta = result.x[:-2]
    return beta, effective(beta), [float(result.x[-2]), float(result.x[-1])]


def _weibull_times(u: np.ndarray, eta: np.ndarray, log_lam: float, log_k: float) -> np.ndarray:
    times: np.ndarray = (-np.log(u) * np.exp(-eta)) ** (1.0 / np.exp(log_k)) / np.exp(log_lam)
    return times


def _stratified_uniforms(rng: np.random.Generator, strata: np.ndarray) -> np.ndarray:
    """Within each stratum, the mid-quantiles (i + 1/2)/n in random order: the subgroup's
    latent distribution then follows the model closely instead of by chance."""
    u = np.empty(len(strata))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        u[idx] = (rng.permutation(len(idx)) + 0.5) / len(idx)
    return u


def km_median(durations: np.ndarray, events: np.ndarray) -> float:
    """Kaplan-Meier median (continuous times). If not reached: 1.5 x the longest follow-up,
    a stand-in that keeps the search moving in the right direction."""
    order = np.argsort(durations, kind="stable")
    t, e = durations[order], events[order]
    at_risk = len(t) - np.arange(len(t))
    surv = np.cumprod(1.0 - e / at_risk)
    below = np.flatnonzero(surv <= 0.5)
    return float(t[below[0]]) if len(below) else 1.5 * float(t[-1])


def km_median_smooth(durations: np.ndarray, events: np.ndarray) -> float:
    """Kaplan-Meier median read off the KM curve joined linearly between its event times
    (the step-function median moves in jumps, which stalls a simplex search; this one moves
    continuously with the times and differs from it by less than one gap between events)."""
    order = np.argsort(durations, kind="stable")
    t, e = durations[order], events[order]
    at_risk = len(t) - np.arange(len(t))
    surv = np.cumprod(1.0 - e / at_risk)
    ev = np.flatnonzero(e)
    if len(ev) == 0 or surv[ev[-1]] > 0.5:
        return 1.5 * float(t[-1])
    times = np.concatenate([[0.0], t[ev]])
    s = np.concatenate([[1.0], surv[ev]])
    j = int(np.flatnonzero(s <= 0.5)[0])
    return float(times[j - 1] + (s[j - 1] - 0.5) / (s[j - 1] - s[j]) * (times[j] - times[j - 1]))


def _rank_within_strata(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Mid-quantile of each value's rank within its stratum (keeps the copula's ordering)."""
    u = np.empty(len(values))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        u[idx] = (stats.rankdata(values[idx], method="ordinal") - 0.5) / len(idx)
    return u


def _cox_log_hr(durations: np.ndarray, events: np.ndarray, X: np.ndarray) -> np.ndarray:
    return cox_newton(durations, events, X)


# --- putting it together --------------------------------------------------------------------------


def reconstruct_cohort(
    seed: int = DEFAULT_SEED, evidence: Evidence | None = None, calibration_rounds: int = 8
) -> pd.DataFrame:
    """The synthetic cohort for ``seed``: one row per patient, columns as in README."""
    evidence = evidence or load_evidence()
    rng = np.random.default_rng(seed)
    cohort = _baseline_features(rng, evidence)
    n = len(cohort)
    is_primary = (cohort["resistance"] == "primary").to_numpy()

    # second-line subset and regimens, fixed counts per group
    counts = evidence.second_line.n
    regimen = np.array([""] * n, dtype=object)
    for group in RESISTANCE_GROUPS:
        idx = np.flatnonzero((cohort["resistance"] == group).to_numpy())
        n_comb, n_tki = counts[f"{group}_combination"], counts[f"{group}_tki"]
        chosen = rng.permutation(idx)[: n_comb + n_tki]
        regimen[chosen[:n_comb]] = "tki_pd1"
        regimen[chosen[n_comb:]] = "tki"
    cohort["second_line_regimen"] = regimen
    has_sl = regimen != ""

    # time of progression on sorafenib (= second-line start) for second-line patients
    # (derived from the imaging schedule and the published primary/secondary split, see above)
    progression = draw_progression_times(rng, is_primary, evidence)

    # enrolment and censoring (months from sorafenib start to end of follow-up); every patient
    # is followed at least to the progression that defines the group (see dropout_rate)
    a_min, a_max, _ = _month_bounds(evidence)
    rate = dropout_rate(evidence)
    u_admin = rng.uniform(size=n)
    e_dropout = rng.exponential(1 / rate if rate > 0 else np.inf, n)

    def censoring(prog: np.ndarray) -> np.ndarray:
        low = np.maximum(a_min, prog + 0.5)
        return np.minimum(low + u_admin * (a_max - low), prog + e_dropout)

    censor = censoring(progression)

    # second-line times: Weibull PH, parameters searched against the published figures,
    # then the generating log-HRs nudged until the Cox fit on this very sample returns the
    # searched log-HRs (common random numbers, a fixed number of rounds).
    sl = cohort.loc[has_sl].reset_index(drop=True)
    sl_censor = (censor - progression)[has_sl]
    # strata = every covariate pattern of the two Cox models, so that each pattern's latent
    # times follow the model closely and the sample HRs sit near the generating ones
    strata = (
        sl["resistance"]
        + "|"
        + sl["second_line_regimen"]
        + "|"
        + sl["tumour_size_over_5cm"].astype(str)
        + "|"
        + sl["multiple_tumours"].astype(str)
    ).to_numpy()
    u_os = _stratified_uniforms(rng, strata)
    noise = rng.standard_normal(len(sl))
    z_pfs = PFS_OS_COPULA_RHO * stats.norm.ppf(u_os) + np.sqrt(1 - PFS_OS_COPULA_RHO**2) * noise
    u_pfs = _rank_within_strata(z_pfs, strata)
    X_pfs = second_line_design(sl, PFS_COVARIATES)
    X_os = second_line_design(sl, OS_COVARIATES)
    G_pfs = generating_design(sl, PFS_COVARIATES)
    G_os = generating_design(sl, OS_COVARIATES)
    start_pfs, b_pfs, base_pfs = fit_weibull_ph(sl, evidence, "pfs")
    start_os, b_os, base_os = fit_weibull_ph(sl, evidence, "os")
    gen_pfs, gen_os = start_pfs.copy(), start_os.copy()

    params = {"pfs": list(base_pfs), "os": list(base_os)}  # [log lambda, log k] per endpoint

    def draw(gp: np.ndarray, go: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # PFS counts death as an event, so PFS <= OS: where a drawn PFS exceeds the drawn OS
        # the death time is moved to the PFS time (death at progression) - see README.
        t_pfs = _weibull_times(u_pfs, G_pfs @ gp, *params["pfs"])
        t_os = np.maximum(_weibull_times(u_os, G_os @ go, *params["os"]), t_pfs)
        return t_pfs, t_os

    median_rows = {ep: _published_medians(evidence, ep) for ep in ("pfs", "os")}
    median_masks = {ep: [_subgroup_mask(sl, f) for f, _ in rows] for ep, rows in median_rows.items()}

    def refit_baselines(gp: np.ndarray, go: np.ndarray) -> None:
        # Weibull scale and shape re-searched so that this sample's Kaplan-Meier subgroup
        # medians (censoring applied, as the study estimated them) match the published ones,
        # given the current generating HRs (OS after PFS: OS is bounded below by PFS).
        for ep in ("pfs", "os"):
            log_m = np.log([m for _, m in median_rows[ep]])
            w = np.array([MEDIAN_EVENT_FRACTION * mask.sum() for mask in median_masks[ep]])

            def loss(theta: np.ndarray, ep: str = ep, w: np.ndarray = w, log_m: np.ndarray = log_m) -> float:
                params[ep] = [theta[0], theta[1]]
                times = draw(gp, go)[0 if ep == "pfs" else 1]
                observed, events = np.minimum(times, sl_censor), times <= sl_censor
                pred = np.log([km_median_smooth(observed[mask], events[mask]) for mask in median_masks[ep]])
                return float(np.sum(w * (pred - log_m) ** 2))

            result = optimize.minimize(
                loss, np.array(params[ep]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-9}
            )
            params[ep] = [float(result.x[0]), float(result.x[1])]

    # Each round: baselines re-searched, times drawn, Cox fitted on the censored sample; the
    # round whose sample HRs are closest to the targets (in published-SE units) is kept.
    se = {
        ep: np.array(
            [
                (
                    np.log(evidence.second_line.cox_multivariable[ep][c].high)
                    - np.log(evidence.second_line.cox_multivariable[ep][c].low)
                )
                / (2 * 1.959963984540054)
                for c in (PFS_COVARIATES if ep == "pfs" else OS_COVARIATES)
            ]
        )
        for ep in ("pfs", "os")
    }
    best: tuple[float, np.ndarray, np.ndarray, dict[str, list[float]]] | None = None
    for _ in range(calibration_rounds):
        refit_baselines(gen_pfs, gen_os)
        t_pfs, t_os = draw(gen_pfs, gen_os)
        try:
            fit_pfs = _cox_log_hr(np.minimum(t_pfs, sl_censor), t_pfs <= sl_censor, X_pfs)
            fit_os = _cox_log_hr(np.minimum(t_os, sl_censor), t_os <= sl_censor, X_os)
        except np.linalg.LinAlgError:  # a degenerate round (e.g. no events in a level): skip it
            continue
        miss = float(np.sum(((fit_pfs - b_pfs) / se["pfs"]) ** 2) + np.sum(((fit_os - b_os) / se["os"]) ** 2))
        if best is None or miss < best[0]:
            best = (miss, gen_pfs.copy(), gen_os.copy(), {k: list(v) for k, v in params.items()})
        # damped and bounded: chase the sample noise, not a runaway
        # (main effects only; the interaction stays as searched)
        gen_pfs = gen_pfs.copy()
        gen_os = gen_os.copy()
        gen_pfs[:-1] = np.clip(gen_pfs[:-1] + 0.7 * (b_pfs - fit_pfs), start_pfs[:-1] - 0.7, start_pfs[:-1] + 0.7)
        gen_os[:-1] = np.clip(gen_os[:-1] + 0.7 * (b_os - fit_os), start_os[:-1] - 0.7, start_os[:-1] + 0.7)
    if best is not None:  # (every round degenerate: keep the searched start)
        _, gen_pfs, gen_os, kept = best
        params.update(kept)
    else:
        gen_pfs, gen_os = start_pfs.copy(), start_os.copy()

    t_pfs, t_os = draw(gen_pfs, gen_os)

    # Last step: the four resistance x regimen cells. A cell's sample KM median still wanders
    # by about one standard error (~20% with 36-55 patients, a third of them censored) from the
    # model's; each cell's times are rescaled by one factor (the same for every patient of the
    # cell, so within-cell order, the copula and proportional hazards inside the cell are kept)
    # until its KM median is the published one. This is a change of that cell's scale, i.e. of
    # the resistance, regimen and interaction effects; the resulting Cox HRs are checked by the
    # report like every other figure.
    cells = (sl["resistance"] + "|" + sl["second_line_regimen"]).to_numpy()
    cell_median = {
        ep: {
            f"{g}|{r}": m
            for g in RESISTANCE_GROUPS
            for r, m in zip(
                ("tki_pd1", "tki"),
                (
                    getattr(evidence.second_line, f"median_{ep}_months")[g]["combination"],
                    getattr(evidence.second_line, f"median_{ep}_months")[g]["tki"],
                ),
                strict=True,
            )
        }
        for ep in ("pfs", "os")
    }
    scale = {ep: np.ones(len(sl)) for ep in ("pfs", "os")}
    drawn_pfs, drawn_os = t_pfs.copy(), t_os.copy()
    for ep in ("pfs", "os"):
        # the KM median is a step function of the scale, so the iteration can cycle between
        # neighbouring event times: keep the round with the smallest worst relative miss
        best_cell: tuple[float, np.ndarray] | None = None
        for _ in range(CELL_ROUNDS):
            t_pfs = drawn_pfs * scale["pfs"]
            t_os = np.maximum(drawn_os * scale["os"], t_pfs)
            times = t_pfs if ep == "pfs" else t_os
            observed, events = np.minimum(times, sl_censor), times <= sl_censor
            worst, step = 0.0, np.ones(len(sl))
            for cell, target in cell_median[ep].items():
                mask = cells == cell
                got = km_median(observed[mask], events[mask])
                worst = max(worst, abs(np.log(got / target)))
                step[mask] = np.clip(target / got, 0.8, 1.25)
            if best_cell is None or worst < best_cell[0]:
                best_cell = (worst, scale[ep].copy())
            scale[ep] = scale[ep] * step
        assert best_cell is not None  # CELL_ROUNDS >= 1
        scale[ep] = best_cell[1]
    t_pfs = drawn_pfs * scale["pfs"]
    t_os = np.maximum(drawn_os * scale["os"], t_pfs)

    # OS from sorafenib start: second-line patients = progression + OS after second line;
    # the others take the group's remaining quantiles of the published piecewise curve.
    latent_os = np.empty(n)
    sl_index = np.flatnonzero(has_sl)
    latent_os[sl_index] = progression[sl_index] + t_os
    targets = os_target_curves(evidence)
    for group in RESISTANCE_GROUPS:
        in_group = (cohort["resistance"] == group).to_numpy()
        m = int(in_group.sum())
        quantiles = targets[group].quantile_time(1.0 - (np.arange(m) + 0.5) / m)
        free = np.ones(m, dtype=bool)
        group_sl = np.flatnonzero(in_group & has_sl)
        for i in group_sl[np.argsort(latent_os[group_sl])]:
            candidates = np.flatnonzero(free)
            j = candidates[np.argmin(np.abs(quantiles[candidates] - latent_os[i]))]
            free[j] = False
        rest = np.flatnonzero(in_group & ~has_sl)
        latent_os[rest] = rng.permutation(quantiles[free])
        # no second line: progression (not in the CSV) must not come after death; a primary
        # patient dying first progresses at death, a secondary one somewhere after 3 months
        late = rest[progression[rest] > latent_os[rest]]
        if group == "primary":
            progression[late] = latent_os[late]
        else:
            window = evidence.cohort.primary_resistance_window_months
            progression[late] = window + (latent_os[late] - window) * rng.uniform(size=len(late))
    censor = np.where(has_sl, censor, censoring(progression))

    os_months = np.round(np.minimum(latent_os, censor), 2)
    os_event = (latent_os <= censor).astype(int)
    cohort["os_months"] = os_months
    cohort["os_event"] = os_event

    for col in SL_COLUMNS:
        cohort[col] = pd.Series([pd.NA] * n, dtype="Float64" if "months" in col else "Int64")
    sl_os = np.round(np.minimum(t_os, sl_censor), 2)
    sl_pfs = np.minimum(np.round(np.minimum(t_pfs, sl_censor), 2), sl_os)
    cohort.loc[has_sl, "sl_pfs_months"] = sl_pfs
    cohort.loc[has_sl, "sl_pfs_event"] = (t_pfs <= sl_censor).astype(int)
    cohort.loc[has_sl, "sl_os_months"] = sl_os
    cohort.loc[has_sl, "sl_os_event"] = (t_os <= sl_censor).astype(int)
    # keep os_months consistent with the second-line timeline (rounding may differ by 0.01)
    cohort.loc[has_sl, "os_months"] = np.round(progression[has_sl] + sl_os, 2)

    # ids in random order so the row position tells nothing about the group
    order = rng.permutation(n)
    cohort = cohort.iloc[order].reset_index(drop=True)
    cohort.insert(0, "patient_id", [f"R{i + 1:04d}" for i in range(n)])
    return cohort[cohort_columns(evidence)]


def cohort_columns(evidence: Evidence | None = None) -> list[str]:
    evidence = evidence or load_evidence()
    return [
        "patient_id",
        "resistance",
        *evidence.table1_features,
        "os_months",
        "os_event",
        "second_line_regimen",
    ] + SL_COLUMNS


def write_cohort_csv(cohort: pd.DataFrame, path: str | Path | TextIO) -> None:
    """CSV with fixed formatting so the bytes (and the training-data SHA-256) are reproducible."""
    cohort.to_csv(path, index=False, lineterminator="\n", float_format="%.2f")
