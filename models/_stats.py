"""Small numerical helpers shared by reconstruction, training and prediction.

Numpy only: serving imports `Z_95` from here, so nothing heavier may be imported.
"""

from __future__ import annotations

import numpy as np

Z_95 = 1.959963984540054


def logistic_irls(
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray]:
    """Unpenalised logistic MLE by Newton-Raphson; returns (beta, covariance).

    X already contains any intercept column. Used where a fit must run thousands of times
    (the reconstruction search, recalibration with an offset); the shipped estimator wraps
    scikit-learn and is checked against this in the tests.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float)
    beta = np.zeros(X.shape[1])
    info = np.eye(X.shape[1])
    for _ in range(max_iter):
        eta = X @ beta + off
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = X.T @ (w * (y - p))
        info = (X * (w * p * (1 - p))[:, None]).T @ X
        step = np.linalg.solve(info, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    eta = X @ beta + off
    p = 1.0 / (1.0 + np.exp(-eta))
    info = (X * (w * p * (1 - p))[:, None]).T @ X
    return beta, np.linalg.inv(info)


def breslow_baseline(
    durations: np.ndarray, events: np.ndarray, Z: np.ndarray, beta: np.ndarray
) -> dict[str, np.ndarray]:
    """Breslow baseline cumulative hazard at covariates = 0, with the pieces its variance needs.

    For each distinct event time t_j (d_j events, risk set R_j):
      dH0_j = d_j / S0_j,  S0_j = sum_{R_j} exp(b'z),
      A(t)  = sum_{t_j <= t} d_j / S0_j^2            (martingale part of Var H),
      B(t)  = sum_{t_j <= t} zbar_j dH0_j,  zbar_j = S1_j / S0_j.
    For a patient x, H(t|x) = exp(b'x) H0(t) and (Kalbfleisch & Prentice, Tsiatis)
      Var H(t|x) ~= exp(2b'x) A(t) + q' V q,  q = exp(b'x) (x H0(t) - B(t)).
    Storing H0, A and B lets a loaded artifact give confidence bands without refitting.
    """
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=bool)
    Z = np.asarray(Z, dtype=float).reshape(len(durations), -1)
    risk = np.exp(Z @ beta)
    order = np.argsort(-durations, kind="stable")
    # cumulative sums over the risk set, from the longest time down
    t_sorted = durations[order]
    s0_cum = np.cumsum(risk[order])
    s1_cum = np.cumsum(Z[order] * risk[order][:, None], axis=0)
    times = np.unique(durations[events])
    dh0, da, db = [], [], []
    for t in times:
        # risk set: durations >= t -> last index in descending order with t_sorted >= t
        k = np.searchsorted(-t_sorted, -t, side="right") - 1
        s0 = s0_cum[k]
        s1 = s1_cum[k]
        d = np.sum(events & (durations == t))
        dh0.append(d / s0)
        da.append(d / s0**2)
        db.append((s1 / s0) * (d / s0))
    return {
        "times": times,
        "cum_hazard": np.cumsum(np.asarray(dh0)),
        "var_martingale": np.cumsum(np.asarray(da)),
        "cov_term": np.cumsum(np.asarray(db).reshape(len(times), Z.shape[1]), axis=0),
    }


def cox_newton(durations: np.ndarray, events: np.ndarray, X: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """Cox partial-likelihood MLE (Breslow ties) by Newton-Raphson; returns the log-HRs.

    A lean stand-in for lifelines inside the reconstruction's calibration loop and the C-index
    bootstrap, where the fit runs many times; the shipped models are fitted with lifelines.
    Raises LinAlgError when the likelihood is monotone (estimates run off to infinity).
    """
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=bool)
    X = np.asarray(X, dtype=float)
    order = np.argsort(-durations, kind="stable")
    t_sorted, X_sorted = durations[order], X[order]
    at_risk_end = np.searchsorted(-t_sorted, -durations[events], side="right") - 1
    x_events = X[events]
    beta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        if np.max(np.abs(beta)) > 20:  # monotone likelihood (e.g. a level with no events)
            raise np.linalg.LinAlgError("Cox fit does not converge (monotone likelihood)")
        r = np.exp(X_sorted @ beta)
        s0 = np.cumsum(r)[at_risk_end]
        s1 = np.cumsum(X_sorted * r[:, None], axis=0)[at_risk_end]
        s2 = np.cumsum(np.einsum("ni,nj->nij", X_sorted, X_sorted) * r[:, None, None], axis=0)[at_risk_end]
        mean = s1 / s0[:, None]
        grad = np.sum(x_events - mean, axis=0)
        info = np.sum(s2 / s0[:, None, None] - np.einsum("ni,nj->nij", mean, mean), axis=0)
        step = np.linalg.solve(info, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def harrell_c(durations: np.ndarray, risk: np.ndarray, events: np.ndarray) -> float:
    """Harrell's C (higher risk should mean shorter time): usable pairs have the shorter time
    an event; risk ties count 1/2. Vectorised O(n^2), for the bootstrap on a few hundred rows;
    the reported apparent C comes from lifelines."""
    T = np.asarray(durations, dtype=float)
    r = np.asarray(risk, dtype=float)
    E = np.asarray(events, dtype=bool)
    usable = (T[:, None] < T[None, :]) & E[:, None]
    diff = r[:, None] - r[None, :]
    score = np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
    n = usable.sum()
    return float((score * usable).sum() / n) if n else float("nan")
