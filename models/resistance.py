"""Primary-resistance risk: the published two-marker logistic model (AFP > 400, ALT > 40).

`PrimaryResistanceModel` has the scikit-learn shape: `__init__` stores parameters, `fit`
learns attributes ending in `_` and returns self, prediction refuses an unfitted model.
Confidence intervals come from the coefficient covariance (inverse Fisher information), which
scikit-learn does not report, so we compute it from the fitted probabilities.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from models._stats import Z_95, logistic_irls
from models.artifacts import TrainingSummary

RISK_FEATURES = ("afp_over_400", "alt_over_40")


class PrimaryResistanceModel(BaseEstimator):
    """Unpenalised logistic regression of primary resistance on binary markers."""

    def __init__(self, features: tuple[str, ...] = RISK_FEATURES, max_iter: int = 1000):
        self.features = features
        self.max_iter = max_iter

    def fit(self, X, y, sample_weight=None) -> PrimaryResistanceModel:
        from sklearn.linear_model import LogisticRegression

        X = _as_matrix(X, len(self.features))
        y = np.asarray(y, dtype=int)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError("y must be 0/1 (1 = primary resistance)")
        estimator = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=self.max_iter, tol=1e-10)  # unpenalised
        estimator.fit(X, y, sample_weight=sample_weight)
        self.intercept_ = float(estimator.intercept_[0])
        self.coef_ = estimator.coef_[0].astype(float)
        self.covariance_ = fisher_covariance(X, self.intercept_, self.coef_, sample_weight)
        self.n_samples_ = int(len(y) if sample_weight is None else np.sum(sample_weight))
        self.n_events_ = int(np.sum(y if sample_weight is None else y * np.asarray(sample_weight)))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("PrimaryResistanceModel is not fitted; call fit() or load an artifact")

    def decision_function(self, X) -> np.ndarray:
        self._check_fitted()
        return self.intercept_ + _as_matrix(X, len(self.features)) @ self.coef_

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict_interval(self, X, z: float = Z_95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, low, high): delta method on the logit scale, then back-transformed."""
        self._check_fitted()
        Xd = np.column_stack([np.ones(len(_as_matrix(X, len(self.features)))), _as_matrix(X, len(self.features))])
        eta = Xd @ np.concatenate([[self.intercept_], self.coef_])
        se = np.sqrt(np.einsum("ij,jk,ik->i", Xd, self.covariance_, Xd))
        expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        return expit(eta), expit(eta - z * se), expit(eta + z * se)

    @property
    def odds_ratios_(self) -> dict[str, dict[str, float]]:
        self._check_fitted()
        se = np.sqrt(np.diag(self.covariance_))[1:]
        return {
            f: {"or": float(np.exp(b)), "low": float(np.exp(b - Z_95 * s)), "high": float(np.exp(b + Z_95 * s))}
            for f, b, s in zip(self.features, self.coef_, se, strict=True)
        }


def _as_matrix(X, width: int) -> np.ndarray:
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.shape[1] != width:
        raise ValueError(f"expected {width} feature columns, got {X.shape[1]}")
    return X


def fisher_covariance(X: np.ndarray, intercept: float, coef: np.ndarray, sample_weight=None) -> np.ndarray:
    """Inverse of the observed Fisher information X'WX (W = w p(1-p)), intercept first."""
    Xd = np.column_stack([np.ones(len(X)), X])
    p = 1.0 / (1.0 + np.exp(-(Xd @ np.concatenate([[intercept], coef]))))
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    info = (Xd * (w * p * (1 - p))[:, None]).T @ Xd
    return np.linalg.inv(info)


def recalibrate_intercept(
    intercept: float, coef: np.ndarray, covariance: np.ndarray, X: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Keep the coefficients, refit the intercept on new data (logistic with offset x'b).

    The returned covariance keeps the original coefficient block and takes the new intercept
    variance from the new data; cross terms are set to 0 (the slopes were not re-estimated).
    """
    offset = X @ coef
    beta, cov = logistic_irls(np.ones((len(y), 1)), y, offset=offset)
    new_cov = np.array(covariance, dtype=float).copy()
    new_cov[0, :] = 0.0
    new_cov[:, 0] = 0.0
    new_cov[0, 0] = cov[0, 0]
    return float(beta[0]), new_cov


# --- evaluation -------------------------------------------------------------------------------------


def evaluate_discrimination(X: np.ndarray, y: np.ndarray, n_boot: int = 500, seed: int = 0, progress=None) -> dict:
    """Apparent AUC with a percentile bootstrap CI, Harrell's optimism-corrected AUC, and
    10-fold cross-validated calibration slope / intercept-in-the-large.

    With two binary markers there are only four covariate patterns, so each bootstrap refit
    runs on the 8 pattern-by-outcome counts with weights (the same MLE, much faster).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=int)
    patterns, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    rows_X = np.vstack([patterns, patterns])
    rows_y = np.concatenate([np.zeros(len(patterns), int), np.ones(len(patterns), int)])

    def cell_counts(idx: np.ndarray) -> np.ndarray:
        return np.bincount(inverse[idx] + len(patterns) * y[idx], minlength=2 * len(patterns)).astype(float)

    def fit_counts(w: np.ndarray) -> np.ndarray:
        Xd = np.column_stack([np.ones(len(rows_X)), rows_X])
        beta, _ = logistic_irls(Xd[w > 0], rows_y[w > 0], w[w > 0])
        return beta

    def auc_counts(beta: np.ndarray, w: np.ndarray) -> float:
        # weighted Mann-Whitney over the pattern rows: P(case scores higher) + P(tie)/2
        score = np.column_stack([np.ones(len(rows_X)), rows_X]) @ beta
        cases, controls = w * (rows_y == 1), w * (rows_y == 0)
        diff = score[:, None] - score[None, :]
        wins = np.where(diff > 1e-12, 1.0, np.where(np.abs(diff) <= 1e-12, 0.5, 0.0))
        return float(cases @ wins @ controls / (cases.sum() * controls.sum()))

    everyone = np.arange(len(y))
    w_full = cell_counts(everyone)
    beta_full = fit_counts(w_full)
    apparent = auc_counts(beta_full, w_full)

    rng = np.random.default_rng(seed)
    boots, optimism = [], []
    for _ in progress(range(n_boot), "bootstrap AUC") if progress else range(n_boot):
        w_b = cell_counts(rng.integers(0, len(y), len(y)))
        try:
            beta_b = fit_counts(w_b)
        except np.linalg.LinAlgError:
            continue
        auc_b = auc_counts(beta_b, w_b)
        boots.append(auc_b)
        optimism.append(auc_b - auc_counts(beta_b, w_full))
    low, high = np.percentile(boots, [2.5, 97.5])

    # cross-validated predictions for calibration
    cv_logit = np.empty(len(y))
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=seed)
    for train, test in folds.split(X, y):
        beta = fit_counts(cell_counts(train))
        cv_logit[test] = beta[0] + X[test] @ beta[1:]
    slope_fit, _ = logistic_irls(np.column_stack([np.ones(len(y)), cv_logit]), y)
    citl, _ = logistic_irls(np.ones((len(y), 1)), y, offset=cv_logit)
    cv_p = 1 / (1 + np.exp(-cv_logit))
    calibration_table = []
    for k, pattern in enumerate(patterns):
        members = inverse == k
        calibration_table.append(
            {
                "pattern": {f: bool(v) for f, v in zip(RISK_FEATURES, pattern, strict=True)},
                "n": int(members.sum()),
                "predicted": float(1 / (1 + np.exp(-(beta_full[0] + pattern @ beta_full[1:])))),
                "predicted_cv_mean": float(cv_p[members].mean()),
                "observed": float(y[members].mean()),
            }
        )
    return {
        "auc": apparent,
        "auc_ci": [float(low), float(high)],
        "auc_optimism_corrected": float(apparent - np.mean(optimism)),
        "auc_cv": float(roc_auc_score(y, cv_logit)),
        "calibration_slope_cv": float(slope_fit[1]),
        "calibration_intercept_cv": float(citl[0]),
        "calibration_table": calibration_table,
        "bootstrap_resamples": len(boots),
        "seed": seed,
    }


# --- prediction outputs -----------------------------------------------------------------------------


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
