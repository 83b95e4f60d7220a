"""Fit the models on a cohort table and turn them into a versioned artifact.

The cohort table has the columns written by `models.reconstruct` (README "Cohort columns"),
whether it is the reconstructed cohort or a hospital's own data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.artifacts import (
    Baseline,
    BundleArtifact,
    CoxArtifact,
    KMReference,
    Metadata,
    RatioCI,
    ResistanceArtifact,
    ResistanceEvaluation,
)
from models.evidence import load_evidence
from models.resistance import RISK_FEATURES, PrimaryResistanceModel, evaluate_discrimination, recalibrate_intercept
from models.survival import (
    SecondLineCoxModel,
    covariate_patterns,
    evaluate_c_index,
    reference_km_curves,
    second_line_frame,
)

MODEL_VERSION_BASE = "1.0.0"
BOOTSTRAP_RESAMPLES = 500
C_INDEX_RESAMPLES = 200
EVALUATION_SEED = 20250101

# Minimum events to fit (README "Retraining"): about 10 outcome events per estimated
# parameter, the usual rule of thumb for logistic and Cox models. Recalibration estimates a
# single intercept / a baseline, so it needs fewer.
MIN_EVENTS_FIT = {"primary": 20, "secondary": 20, "sl_pfs_event": 40, "sl_os_event": 30}
MIN_EVENTS_RECALIBRATE = {"primary": 10, "secondary": 10, "sl_pfs_event": 10, "sl_os_event": 10}

BINARY_REQUIRED = ("afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours")
REQUIRED_COLUMNS = (
    "resistance", *BINARY_REQUIRED, "os_months", "os_event", "second_line_regimen",
    "sl_pfs_months", "sl_pfs_event", "sl_os_months", "sl_os_event",
)


class TrainingDataError(ValueError):
    """Training data that cannot be used, with the column (and row) at fault."""


def _row_label(index) -> str:
    # CSV line number: header is line 1, first data row line 2
    return f"row {int(index) + 2}" if isinstance(index, (int, np.integer)) else f"row {index}"


def validate_training_frame(df: pd.DataFrame, recalibrate: bool = False) -> pd.DataFrame:
    """Check columns and values; return a cleaned copy (typed columns). Raises TrainingDataError."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TrainingDataError(f"missing required column(s): {', '.join(missing)}")
    df = df.copy().reset_index(drop=True)

    def bad(column: str, mask: pd.Series, expected: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            raise TrainingDataError(
                f"column '{column}', {_row_label(i)}: value {df[column].iloc[i]!r} is not {expected}"
                f" ({int(mask.sum())} bad value(s) in this column)"
            )

    df["resistance"] = df["resistance"].astype("string").str.strip().str.lower()
    bad("resistance", ~df["resistance"].isin(["primary", "secondary"]).fillna(False), "'primary' or 'secondary'")
    for col in (*BINARY_REQUIRED, "os_event"):
        numeric = pd.to_numeric(df[col], errors="coerce")
        bad(col, ~numeric.isin([0, 1]), "0 or 1")
        df[col] = numeric.astype(int)
    months = pd.to_numeric(df["os_months"], errors="coerce")
    bad("os_months", ~(months >= 0).fillna(False), "a non-negative number of months")
    df["os_months"] = months.astype(float)

    regimen = df["second_line_regimen"].fillna("").astype(str).str.strip().str.lower()
    df["second_line_regimen"] = regimen
    bad("second_line_regimen", ~regimen.isin(["", "tki", "tki_pd1"]), "'tki', 'tki_pd1' or empty")
    has_sl = regimen != ""
    for col in ("sl_pfs_months", "sl_os_months"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad(col, has_sl & ~(values >= 0).fillna(False), "a non-negative number of months (second-line patient)")
        df[col] = values.where(has_sl)
    for col in ("sl_pfs_event", "sl_os_event"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad(col, has_sl & ~values.isin([0, 1]), "0 or 1 (second-line patient)")
        df[col] = values.where(has_sl)
    bad("sl_pfs_months", has_sl & (df["sl_pfs_months"] > df["sl_os_months"] + 1e-9),
        "<= sl_os_months (progression-free survival cannot exceed overall survival)")

    minimum = MIN_EVENTS_RECALIBRATE if recalibrate else MIN_EVENTS_FIT
    counts = {
        "primary": int((df["resistance"] == "primary").sum()),
        "secondary": int((df["resistance"] == "secondary").sum()),
        "sl_pfs_event": int(df.loc[has_sl, "sl_pfs_event"].sum()),
        "sl_os_event": int(df.loc[has_sl, "sl_os_event"].sum()),
    }
    for key, need in minimum.items():
        if counts[key] < need:
            what = f"patients with resistance='{key}'" if key in ("primary", "secondary") else f"events in '{key}'"
            raise TrainingDataError(
                f"too few {what}: {counts[key]} (need at least {need} to {'recalibrate' if recalibrate else 'fit'})"
            )
    for reg in ("tki", "tki_pd1"):
        if not (regimen == reg).any():
            raise TrainingDataError(f"column 'second_line_regimen': no patient with regimen '{reg}'")
    return df


def cohort_csv_bytes(cohort: pd.DataFrame) -> bytes:
    from models.reconstruct import write_cohort_csv

    buffer = io.StringIO()
    write_cohort_csv(cohort, buffer)
    return buffer.getvalue().encode("utf-8")


def software_versions() -> dict[str, str]:
    import lifelines
    import pydantic
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "lifelines": lifelines.__version__,
        "pydantic": pydantic.__version__,
    }


def _ratio_dict(names, coef, cov) -> dict[str, RatioCI]:
    from models._stats import Z_95

    se = np.sqrt(np.diag(np.asarray(cov)))
    return {
        n: RatioCI(estimate=float(np.exp(b)), low=float(np.exp(b - Z_95 * s)), high=float(np.exp(b + Z_95 * s)))
        for n, b, s in zip(names, coef, se)
    }


def _cox_artifact(model: SecondLineCoxModel, recalibrated: bool, evaluation: dict) -> CoxArtifact:
    base = model.baseline_
    return CoxArtifact(
        endpoint=model.endpoint,
        covariates=list(model.covariates),
        coefficients=[float(v) for v in model.coef_],
        covariance=np.asarray(model.covariance_, dtype=float).tolist(),
        hazard_ratios=_ratio_dict(model.covariates, model.coef_, model.covariance_),
        baseline=Baseline(
            times=base["times"].tolist(),
            cum_hazard=base["cum_hazard"].tolist(),
            var_martingale=base["var_martingale"].tolist(),
            cov_term=base["cov_term"].tolist(),
        ),
        n=model.n_,
        events=model.events_,
        max_time=model.max_time_,
        c_index=model.c_index_,
        c_index_ci=tuple(evaluation["c_index_bootstrap_ci"]),
        c_index_optimism_corrected=evaluation["c_index_optimism_corrected"],
        recalibrated=recalibrated,
    )


def _cox_from_artifact(art: CoxArtifact) -> SecondLineCoxModel:
    model = SecondLineCoxModel(art.endpoint, tuple(art.covariates))
    model.coef_ = np.asarray(art.coefficients)
    model.covariance_ = np.asarray(art.covariance)
    return model


def train_bundle(
    cohort: pd.DataFrame,
    *,
    training_data: str,
    training_data_sha256: str,
    seed: int | None,
    base: BundleArtifact | None = None,
    progress=None,
) -> BundleArtifact:
    """Fit (or, with `base`, recalibrate) both models on a validated cohort table."""
    from models._progress import stage

    started = time.perf_counter()
    recalibrate = base is not None
    cohort = validate_training_frame(cohort, recalibrate=recalibrate)
    evidence = load_evidence()
    X = cohort[list(RISK_FEATURES)].to_numpy(dtype=float)
    y = (cohort["resistance"] == "primary").to_numpy(dtype=int)

    with stage("primary-resistance model"):
        if recalibrate:
            coef = np.asarray(base.resistance.coefficients)
            intercept, covariance = recalibrate_intercept(
                base.resistance.intercept, coef, np.asarray(base.resistance.covariance), X, y
            )
        else:
            risk = PrimaryResistanceModel().fit(X, y)
            intercept, coef, covariance = risk.intercept_, risk.coef_, risk.covariance_
        evaluation = evaluate_discrimination(X, y, n_boot=BOOTSTRAP_RESAMPLES, seed=EVALUATION_SEED, progress=progress)
    resistance = ResistanceArtifact(
        features=list(RISK_FEATURES),
        intercept=float(intercept),
        coefficients=[float(v) for v in coef],
        covariance=np.asarray(covariance, dtype=float).tolist(),
        odds_ratios=_ratio_dict(RISK_FEATURES, coef, np.asarray(covariance)[1:, 1:]),
        n=int(len(y)),
        n_primary=int(y.sum()),
        base_rate=float(y.mean()),
        recalibrated=recalibrate,
        evaluation=ResistanceEvaluation(**evaluation),
    )

    sl = second_line_frame(cohort)
    cox, cox_evaluation = {}, {}
    with stage("second-line Cox models"):
        for endpoint in ("pfs", "os"):
            if recalibrate:
                model = _cox_from_artifact(getattr(base, endpoint)).recalibrate(sl)
            else:
                model = SecondLineCoxModel(endpoint).fit(sl)
            try:
                cox_evaluation[endpoint] = evaluate_c_index(model, sl, n_boot=C_INDEX_RESAMPLES, seed=EVALUATION_SEED,
                                                            progress=progress)
            except ValueError as exc:
                raise TrainingDataError(str(exc)) from None
            cox[endpoint] = _cox_artifact(model, recalibrate, cox_evaluation[endpoint])
    with stage("Kaplan-Meier reference curves"):
        curves = [KMReference(**c) for c in reference_km_curves(cohort)]

    version = f"{MODEL_VERSION_BASE}+{training_data_sha256[:8]}" + ("-recal" if recalibrate else "")
    metadata = Metadata(
        model_version=version,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        training_data=training_data,
        training_data_sha256=training_data_sha256,
        n=int(len(cohort)),
        events={
            "primary_resistance": int(y.sum()),
            "os_from_sorafenib": int(cohort["os_event"].sum()),
            "second_line_patients": int(len(sl)),
            "sl_pfs": cox["pfs"].events,
            "sl_os": cox["os"].events,
        },
        seed=seed,
        software=software_versions(),
        evidence_doi=evidence.source.doi,
        recalibrated_from=base.metadata.model_version if recalibrate else None,
        training_seconds=round(time.perf_counter() - started, 3),
        evaluation={
            "primary_resistance": {k: v for k, v in evaluation.items() if k != "calibration_table"},
            "sl_pfs": cox_evaluation["pfs"],
            "sl_os": cox_evaluation["os"],
        },
    )
    return BundleArtifact(
        metadata=metadata,
        resistance=resistance,
        pfs=cox["pfs"],
        os=cox["os"],
        covariate_patterns=covariate_patterns(sl),
        reference_curves=curves,
    )


def train_from_reconstruction(seed: int | None = None, progress=None) -> BundleArtifact:
    """The default models: fitted on the reconstructed cohort for `seed` (default seed if None)."""
    from models.reconstruct import DEFAULT_SEED, reconstruct_cohort

    seed = DEFAULT_SEED if seed is None else seed
    cohort = reconstruct_cohort(seed)
    sha = hashlib.sha256(cohort_csv_bytes(cohort)).hexdigest()
    return train_bundle(
        cohort,
        training_data=f"reconstructed cohort (models.reconstruct, seed {seed}); synthetic, not patient data",
        training_data_sha256=sha,
        seed=seed,
        progress=progress,
    )


def read_training_csv(path: str | Path) -> tuple[pd.DataFrame, str]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError(f"cannot read training data {path}: {exc}") from exc
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"second_line_regimen": "string"}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise TrainingDataError(f"{path} is not a readable CSV: {exc}") from exc
    return frame, hashlib.sha256(data).hexdigest()
