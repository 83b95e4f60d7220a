"""Primary-resistance risk: the published two-marker logistic model (AFP > 400, ALT > 40).

`PrimaryResistanceModel` has the scikit-learn shape: `__init__` stores parameters, `fit`
learns attributes ending in `_` and returns self, prediction refuses an unfitted model.
Confidence intervals come from the coefficient covariance (inverse Fisher information), which
scikit-learn does not report, so we compute it from the fitted probabilities. Training and
reports import this module; serving reads the fitted numbers from the artifact (`models.registry`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from models._progress import Progress
from models._stats import Z_95, logistic_irls

RISK_FEATURES = ("afp_over_400", "alt_over_40")


class PrimaryResistanceModel(BaseEstimator):
    """Unpenalised logistic regression of primary resistance on binary markers."""

    def __init__(self, features: tuple[str, ...] = RISK_FEATURES, max_iter: int = 1000):
        self.features = features
        self.max_iter = max_iter

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> PrimaryResistanceModel:
        from sklearn.linear_model import LogisticRegression

        matrix = _as_matrix(X, len(self.features))
        outcome = np.asarray(y, dtype=int)
        if set(np.unique(outcome)) - {0, 1}:
            raise ValueError("y must be 0/1 (1 = primary resistance)")
        estimator = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=self.max_iter, tol=1e-10)  # unpenalised
        estimator.fit(matrix, outcome, sample_weight=sample_weight)
        self.intercept_ = float(estimator.intercept_[0])
        self.coef_: NDArray[np.float64] = np.asarray(estimator.coef_[0], dtype=float)
        self.covariance_ = fisher_covariance(matrix, self.intercept_, self.coef_, sample_weight)
        weights = np.ones(len(outcome)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.n_samples_ = int(np.sum(weights))
        self.n_events_ = int(np.sum(outcome * weights))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("PrimaryResistanceModel is not fitted; call fit() or load an artifact")

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        self._check_fitted()
        return self.intercept_ + _as_matrix(X, len(self.features)) @ self.coef_

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict_interval(
        self, X: ArrayLike, z: float = Z_95
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(probability, low, high): delta method on the logit scale, then back-transformed."""
        self._check_fitted()
        matrix = _as_matrix(X, len(self.features))
        Xd = np.column_stack([np.ones(len(matrix)), matrix])
        eta = Xd @ np.concatenate([[self.intercept_], self.coef_])
        se = np.sqrt(np.einsum("ij,jk,ik->i", Xd, self.covariance_, Xd))
        return _expit(eta), _expit(eta - z * se), _expit(eta + z * se)

    @property
    def odds_ratios_(self) -> dict[str, dict[str, float]]:
        self._check_fitted()
        se = np.sqrt(np.diag(self.covariance_))[1:]
        return {
            f: {"or": float(np.exp(b)), "low": float(np.exp(b - Z_95 * s)), "high": float(np.exp(b + Z_95 * s))}
            for f, b, s in zip(self.features, self.coef_, se, strict=True)
        }


def _expit(eta: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-eta))


def _as_matrix(X: ArrayLike, width: int) -> NDArray[np.float64]:
    """A float matrix (one row per patient) from an array, a DataFrame or a single row."""
    matrix = np.asarray(X, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape[1] != width:
        raise ValueError(f"expected {width} feature columns, got {matrix.shape[1]}")
    return matrix


def fisher_covariance(
    X: NDArray[np.float64], intercept: float, coef: NDArray[np.float64], sample_weight: ArrayLike | None = None
) -> NDArray[np.float64]:
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


def evaluate_discrimination(
    X: ArrayLike, y: ArrayLike, n_boot: int = 500, seed: int = 0, progress: Progress | None = None
) -> dict[str, Any]:
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
