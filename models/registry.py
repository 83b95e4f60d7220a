"""The models as the service sees them: load a JSON artifact once, predict many times.

    from models.registry import load_bundle
    bundle = load_bundle()                      # the shipped models/artifacts/
    bundle.resistance.predict_risk(afp_over_400=True, alt_over_40=False)
    bundle.survival_comparison(primary_resistance=True, tumour_size_over_5cm=None, multiple_tumours=True)

Everything a prediction needs is computed at load time (per-pattern risks, baseline arrays).
Both predictions depend on a handful of yes/no/unknown inputs only (4 risk answers, 27 survival
comparisons), so each answer is computed once per process and then shared: treat results as
read-only (the models are frozen).

Serving imports this module, so it needs numpy and pydantic only: the fitters (scikit-learn and
lifelines, in `models.resistance` / `models.survival`) are for training and reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from models._stats import Z_95
from models.artifacts import ArtifactError, BundleArtifact, KMReference, Metadata, TrainingSummary, read_bundle

__all__ = [
    "ArtifactError",
    "ModelBundle",
    "RegimenComparison",
    "RiskEstimate",
    "SurvivalCurveEngine",
    "SurvivalEstimate",
    "load_bundle",
    "marginal_mixture",
]

# Patient-level covariates that may be unknown at prediction time (regimen is what we compare).
PATIENT_COVARIATES = ("primary_resistance", "tumour_size_over_5cm", "multiple_tumours")
LANDMARKS = (6, 12, 24)


# --- prediction outputs ---------------------------------------------------------------------------


class Contribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    feature: str
    present: bool
    log_odds: float
    odds_ratio: float


class RiskEstimate(BaseModel):
    """Predicted probability of primary resistance to sorafenib, with its 95% CI."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    probability: float
    ci_low: float
    ci_high: float
    base_rate: float
    contributions: list[Contribution]
    auc: float  # bootstrap optimism-corrected, never the apparent AUC
    auc_ci: tuple[float, float]  # the apparent bootstrap CI moved down by the optimism
    auc_cv: float | None = None  # 10-fold cross-validated AUC (pooled folds), shown beside it
    model_version: str
    training: TrainingSummary  # what the model was fitted to (from the artifact), for the cards


class SurvivalPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    survival: float | None
    low: float | None
    high: float | None


class Curve(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    times: list[float]
    survival: list[float]
    low: list[float]
    high: list[float]


class SurvivalEstimate(BaseModel):
    """Model-based survival for one patient and regimen. Times in months from second-line
    start; None where the training follow-up does not reach (median not reached, etc.)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    median_months: float | None
    median_ci: tuple[float | None, float | None]
    survival_at: dict[int, SurvivalPoint]
    curve: Curve


class SurvivalCurveEngine:
    """Survival with pointwise 95% bands for a (weighted mixture of) covariate vector(s).

    For a mixture S(t) = sum_k w_k S_k(t) (used to marginalise unknown covariates), the
    delta method gives
      Var S(t) ~= (sum_k w_k S_k r_k)^2 A(t) + g' V g,  g = sum_k w_k S_k r_k (x_k H0(t) - B(t)),
    with r_k = exp(b'x_k) and A, B, H0 from the Breslow baseline (see `breslow_baseline`).
    The band is built on the log(-log S) scale, which keeps it inside (0, 1).
    """

    def __init__(
        self,
        covariates: Sequence[str],
        coef: ArrayLike,
        covariance: ArrayLike,
        times: ArrayLike,
        cum_hazard: ArrayLike,
        var_martingale: ArrayLike,
        cov_term: ArrayLike,
        max_time: float,
    ):
        self.covariates = tuple(covariates)
        self.coef = np.asarray(coef, dtype=float)
        self.covariance = np.asarray(covariance, dtype=float)
        self.times = np.concatenate([[0.0], np.asarray(times, dtype=float)])
        self.h0 = np.concatenate([[0.0], np.asarray(cum_hazard, dtype=float)])
        self.a = np.concatenate([[0.0], np.asarray(var_martingale, dtype=float)])
        self.b = np.vstack(
            [np.zeros((1, len(self.coef))), np.asarray(cov_term, dtype=float).reshape(-1, len(self.coef))]
        )
        self.max_time = float(max_time)
        self._times_list = self.times.tolist()

    def estimate(self, mixture: Sequence[tuple[float, Mapping[str, float]]]) -> SurvivalEstimate:
        w = np.array([weight for weight, _ in mixture])
        X = np.array([[float(x[c]) for c in self.covariates] for _, x in mixture])
        r = np.exp(X @ self.coef)  # (K,)
        s_k = np.exp(-np.outer(r, self.h0))  # (K, T)
        ws = (w * r)[:, None] * s_k  # w_k r_k S_k
        surv = w @ s_k
        m = ws.sum(axis=0)
        # g(t) = sum_k w_k r_k S_k (x_k H0 - B)
        g = (ws.T @ X) * self.h0[:, None] - m[:, None] * self.b
        var = m**2 * self.a + np.einsum("ti,ij,tj->t", g, self.covariance, g)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_s = np.log(surv)
            se = np.sqrt(var) / np.abs(surv * log_s)
            low = np.where(surv < 1, surv ** np.exp(Z_95 * se), 1.0)
            high = np.where(surv < 1, surv ** np.exp(-Z_95 * se), 1.0)
        low = np.nan_to_num(low, nan=0.0)
        high = np.nan_to_num(high, nan=1.0)
        surv_at = {}
        for t in LANDMARKS:
            if t > self.max_time:
                surv_at[t] = SurvivalPoint(survival=None, low=None, high=None)
                continue
            i = int(np.searchsorted(self.times, t, side="right") - 1)
            surv_at[t] = SurvivalPoint(survival=float(surv[i]), low=float(low[i]), high=float(high[i]))
        return SurvivalEstimate(
            median_months=self._first_below_half(surv),
            median_ci=(self._first_below_half(low), self._first_below_half(high)),
            survival_at=surv_at,
            curve=Curve(times=self._times_list, survival=surv.tolist(), low=low.tolist(), high=high.tolist()),
        )

    def _first_below_half(self, s: np.ndarray) -> float | None:
        below = np.flatnonzero(s <= 0.5)
        return float(self.times[below[0]]) if len(below) else None


def marginal_mixture(
    patterns: list[dict[str, Any]], known: dict[str, bool | None]
) -> tuple[list[tuple[float, dict[str, bool]]], list[str]]:
    """Weights over the patterns compatible with the known covariates (training prevalence
    of the unknown ones among patients sharing the known ones; if none share them, the
    unknowns' overall prevalence)."""
    unknown = [c for c in PATIENT_COVARIATES if known.get(c) is None]
    fixed = {c: bool(v) for c, v in known.items() if v is not None}
    compatible = [p for p in patterns if all(p[c] == v for c, v in fixed.items())]
    total = sum(p["n"] for p in compatible)
    if total == 0:  # fall back to the unknowns' marginal distribution
        compatible = [{**p, **fixed} for p in patterns]
        total = sum(p["n"] for p in compatible)
    mixture: dict[tuple[bool, ...], float] = {}
    for p in compatible:
        key = tuple(p[c] for c in PATIENT_COVARIATES)
        mixture[key] = mixture.get(key, 0.0) + p["n"] / total
    return [(w, dict(zip(PATIENT_COVARIATES, key, strict=True))) for key, w in mixture.items() if w > 0], unknown


# --- the loaded bundle ------------------------------------------------------------------------------


def _expit(value: float) -> float:
    return float(1.0 / (1.0 + np.exp(-value)))


REGIMENS = ("tki", "tki_pd1")


class RegimenComparison(BaseModel):
    """Second-line PFS and OS for one patient under TKI alone vs TKI + PD-1 inhibitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pfs: dict[str, SurvivalEstimate]
    os: dict[str, SurvivalEstimate]
    marginalised_covariates: list[str]
    c_index: dict[str, float]
    model_version: str
    training: TrainingSummary  # what these Cox models were fitted to (from the artifact)


class ResistanceRiskPredictor:
    """Primary-resistance risk from a loaded artifact (the four possible answers precomputed)."""

    def __init__(self, artifact: BundleArtifact):
        art = artifact.resistance
        self.features = tuple(art.features)
        self.base_rate = art.base_rate
        # The apparent AUC is measured on the data the model was fitted to and overstates it: the
        # cards show the bootstrap optimism-corrected AUC, with the apparent bootstrap CI moved
        # down by the same optimism (Harrell's correction applied to both ends).
        optimism = art.evaluation.auc - art.evaluation.auc_optimism_corrected
        self.auc = art.evaluation.auc_optimism_corrected
        self.auc_ci = tuple(bound - optimism for bound in art.evaluation.auc_ci)
        self.auc_cv = art.evaluation.auc_cv
        self.intercept = art.intercept
        self.coefficients = np.asarray(art.coefficients)
        self.covariance = np.asarray(art.covariance)
        self._version = artifact.metadata.model_version
        self._training = TrainingSummary.of(artifact)
        self._cache: dict[tuple[bool, bool], RiskEstimate] = {}
        for afp in (False, True):
            for alt in (False, True):
                self._cache[(afp, alt)] = self._compute(afp, alt)

    def _compute(self, afp: bool, alt: bool) -> RiskEstimate:
        x = np.array([1.0, float(afp), float(alt)])
        eta = float(x @ np.concatenate([[self.intercept], self.coefficients]))
        se = float(np.sqrt(x @ self.covariance @ x))
        contributions = [
            Contribution(feature=f, present=bool(v), log_odds=float(b * v), odds_ratio=float(np.exp(b * v)))
            for f, b, v in zip(self.features, self.coefficients, (afp, alt), strict=True)
        ]
        return RiskEstimate(
            probability=_expit(eta),
            ci_low=_expit(eta - Z_95 * se),
            ci_high=_expit(eta + Z_95 * se),
            base_rate=self.base_rate,
            contributions=contributions,
            auc=self.auc,
            auc_ci=self.auc_ci,
            auc_cv=self.auc_cv,
            model_version=self._version,
            training=self._training,
        )

    def predict_risk(self, afp_over_400: bool, alt_over_40: bool) -> RiskEstimate:
        """Probability of primary resistance (progression within 3 months of sorafenib).

        `contributions` give each marker's share of this patient's log-odds (0 and OR 1 when
        the marker is absent)."""
        if not isinstance(afp_over_400, (bool, np.bool_)) or not isinstance(alt_over_40, (bool, np.bool_)):
            raise TypeError("predict_risk takes booleans (a missing marker cannot be scored)")
        return self._cache[(bool(afp_over_400), bool(alt_over_40))]


class ModelBundle:
    """The loaded artifact and the predictions built on it."""

    def __init__(self, artifact: BundleArtifact, source: Path | None = None):
        self.artifact = artifact
        self.source = source
        self.resistance = ResistanceRiskPredictor(artifact)
        self.training = TrainingSummary.of(artifact)
        self._engines = {
            endpoint: SurvivalCurveEngine(
                covariates=art.covariates,
                coef=art.coefficients,
                covariance=art.covariance,
                times=art.baseline.times,
                cum_hazard=art.baseline.cum_hazard,
                var_martingale=art.baseline.var_martingale,
                cov_term=art.baseline.cov_term,
                max_time=art.max_time,
            )
            for endpoint, art in (("pfs", artifact.pfs), ("os", artifact.os))
        }
        self._patterns = artifact.covariate_patterns
        self._comparisons: dict[tuple[bool | None, bool | None, bool | None], RegimenComparison] = {}
        # Optimism-corrected, as the AUC above: the apparent C-index flatters the fitted data.
        self._c_index = {"pfs": artifact.pfs.c_index_optimism_corrected, "os": artifact.os.c_index_optimism_corrected}

    @property
    def version(self) -> str:
        return self.artifact.metadata.model_version

    @property
    def metadata(self) -> Metadata:
        return self.artifact.metadata

    def survival_comparison(
        self,
        primary_resistance: bool | None,
        tumour_size_over_5cm: bool | None,
        multiple_tumours: bool | None,
    ) -> RegimenComparison:
        """PFS and OS after second-line start under each regimen. A covariate given as None is
        marginalised over its training prevalence (among patients sharing the known ones), and
        is listed in `marginalised_covariates`. Computed once per combination, then shared."""
        key = (primary_resistance, tumour_size_over_5cm, multiple_tumours)
        cached = self._comparisons.get(key)
        if cached is None:
            cached = self._comparisons[key] = self._compare(*key)
        return cached

    def _compare(
        self, primary_resistance: bool | None, tumour_size_over_5cm: bool | None, multiple_tumours: bool | None
    ) -> RegimenComparison:
        known = {
            "primary_resistance": primary_resistance,
            "tumour_size_over_5cm": tumour_size_over_5cm,
            "multiple_tumours": multiple_tumours,
        }
        mixture, unknown = marginal_mixture(self._patterns, known)
        result: dict[str, dict[str, SurvivalEstimate]] = {"pfs": {}, "os": {}}
        for regimen in REGIMENS:
            weighted = [(w, {**x, "tki_alone": regimen == "tki"}) for w, x in mixture]
            for endpoint, engine in self._engines.items():
                result[endpoint][regimen] = engine.estimate(weighted)
        return RegimenComparison(
            pfs=result["pfs"],
            os=result["os"],
            marginalised_covariates=[c for c in PATIENT_COVARIATES if c in unknown],
            c_index=dict(self._c_index),
            model_version=self.version,
            training=self.training,
        )

    def reference_curves(self) -> list[KMReference]:
        """Kaplan-Meier curves by subgroup from the training cohort (the study-reference curves)."""
        return list(self.artifact.reference_curves)

    def model_card(self) -> dict[str, Any]:
        from models.model_card import model_card

        return model_card(self.artifact)

    def model_card_markdown(self) -> str:
        from models.model_card import model_card_markdown

        return model_card_markdown(self.artifact)


def load_bundle(path: str | Path | None = None) -> ModelBundle:
    """Load and validate an artifact (a directory holding bundle.json, or the file itself).
    None loads the shipped models/artifacts/. Raises ArtifactError on a bad or missing file."""
    if path is None:
        return _shipped_bundle()
    return ModelBundle(read_bundle(path), Path(path))


@lru_cache(maxsize=1)
def _shipped_bundle() -> ModelBundle:
    from models.artifacts import SHIPPED_DIR

    return ModelBundle(read_bundle(SHIPPED_DIR), SHIPPED_DIR)
