"""Fit the models on a cohort table and turn them into a versioned artifact.

The cohort table has the columns written by `models.reconstruct` (README "Cohort columns"),
whether it is the reconstructed cohort or a hospital's own data.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from hcc_evidence import load_evidence
from hcc_evidence.errors import HccCdsError
from models.artifacts import (
    Baseline,
    BundleArtifact,
    CoxArtifact,
    KMReference,
    Metadata,
    RatioCI,
    ResistanceArtifact,
    ResistanceEvaluation,
    demographics_from_cohort,
)
from models.resistance import RISK_FEATURES, PrimaryResistanceModel, evaluate_discrimination, recalibrate_intercept
from models.survival import (
    SecondLineCoxModel,
    covariate_patterns,
    evaluate_c_index,
    reference_km_curves,
    second_line_frame,
)

if TYPE_CHECKING:
    from models._progress import Progress

MODEL_VERSION_BASE = "1.0.0"
BOOTSTRAP_RESAMPLES = 500
C_INDEX_RESAMPLES = 200
EVALUATION_SEED = 20250101

# Minimum events to fit (README "Retraining"): about 10 outcome events per estimated
# parameter, the usual rule of thumb for logistic and Cox models. Recalibration estimates a
# single intercept / a baseline, so it needs fewer.
MIN_EVENTS_FIT = {"primary": 20, "secondary": 20, "sl_pfs_event": 40, "sl_os_event": 30}
MIN_EVENTS_RECALIBRATE = {"primary": 10, "secondary": 10, "sl_pfs_event": 10, "sl_os_event": 10}
# Evaluating a fixed model estimates no parameter; below these counts its AUC, C-index and
# calibration would be too imprecise to read (and the CIs would say so anyway).
MIN_EVENTS = {"fit": MIN_EVENTS_FIT, "recalibrate": MIN_EVENTS_RECALIBRATE, "evaluate": MIN_EVENTS_RECALIBRATE}

BINARY_REQUIRED = ("afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours")
REQUIRED_COLUMNS = (
    "resistance",
    *BINARY_REQUIRED,
    "os_months",
    "os_event",
    "second_line_regimen",
    "sl_pfs_months",
    "sl_pfs_event",
    "sl_os_months",
    "sl_os_event",
)
SECOND_LINE_COLUMNS = ("sl_pfs_months", "sl_pfs_event", "sl_os_months", "sl_os_event")
# The other Table 1 columns: optional; when present, 0, 1 or empty (unknown).
OPTIONAL_BINARY = (
    "age_over_50",
    "male",
    "diabetes",
    "hypertension",
    "smoking",
    "drinking",
    "hbv",
    "vascular_invasion",
    "extrahepatic_metastasis",
    "portal_hypertension",
    "splenomegaly",
    "cirrhosis",
    "ast_over_40",
    "child_pugh_b",
    "bclc_c",
)


class TrainingDataError(HccCdsError, ValueError):
    """Training data that cannot be used. `problems` lists each bad place in the input once
    (e.g. "line 7 of hospital.csv, column 'afp_over_400': "7", expected 0 or 1")."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__("\n  ".join([message, *self.problems]))


@dataclass(frozen=True)
class DataSource:
    """Where a cohort table came from, so that a problem names its place in the input. The
    table's index holds the place of each row: its line in a CSV file (unit "line"), or its
    patient id in a FHIR export (unit "patient"). Tables built in memory use "row" (1-based)."""

    name: str
    unit: str = "row"

    def where(self, label: object) -> str:
        return f"{self.unit} {label} of {self.name}"


IN_MEMORY = DataSource("the cohort table")
# A column with many bad cells shows this many, then the places of the others.
PROBLEMS_SHOWN_PER_CHECK = 5


def plain_value(value: object) -> str:
    """A cell as a person would write it: `empty`, or its text in quotes (never a numpy repr)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "empty"
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return f'"{text}"' if text else "empty"


def _numbers(series: pd.Series) -> np.ndarray:
    """Cells as floats (NaN where empty or not a number), whether they came typed or as text."""
    if not pd.api.types.is_numeric_dtype(series):
        series = series.astype("string").str.strip()
    numbers = pd.to_numeric(series, errors="coerce")
    floats: np.ndarray = pd.Series(numbers).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return floats


def _is_empty(series: pd.Series) -> np.ndarray:
    empty: np.ndarray = series.astype("string").str.strip().fillna("").eq("").to_numpy()
    return empty


class _Problems:
    """Collects every bad cell of a table, each once, named by its place in the input."""

    def __init__(self, df: pd.DataFrame, source: DataSource | None):
        self.df = df
        self.source = source or IN_MEMORY
        self.labels = list(df.index) if source is not None else list(range(1, len(df) + 1))
        self.lines: list[str] = []

    def where(self, i: int) -> str:
        return self.source.where(self.labels[i])

    def _places(self, rows: np.ndarray) -> str:
        shown = ", ".join(str(self.labels[i]) for i in rows[:10])
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        return f"{self.source.unit}s {shown}{more}"

    def add(self, mask: ArrayLike, describe: Callable[[int], str], summary: str) -> None:
        """`describe(i)` says what is wrong on row i; past PROBLEMS_SHOWN_PER_CHECK rows the
        rest are counted under `summary`."""
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        for i in rows[:PROBLEMS_SHOWN_PER_CHECK]:
            self.lines.append(f"{self.where(i)}, {describe(i)}")
        rest = rows[PROBLEMS_SHOWN_PER_CHECK:]
        if len(rest):
            self.lines.append(f"{summary}: {len(rest)} more like these, on {self._places(rest)}")

    def cells(self, column: str, mask: ArrayLike, expected: str) -> None:
        values = self.df[column]
        self.add(
            mask,
            lambda i: f"column '{column}': {plain_value(values.iloc[i])}, expected {expected}",
            f"column '{column}'",
        )


def validate_training_frame(
    df: pd.DataFrame, recalibrate: bool = False, *, source: DataSource | None = None, purpose: str | None = None
) -> pd.DataFrame:
    """Check columns and values; return a cleaned copy (typed columns, index 0..n-1).

    Every bad cell is reported once, by its place in the input (`source`: a CSV line or a FHIR
    patient), in one TrainingDataError. `purpose` ("fit", "recalibrate" or "evaluate"; default
    from `recalibrate`) sets the minimum numbers of patients and events."""
    purpose = purpose or ("recalibrate" if recalibrate else "fit")
    where = source or IN_MEMORY
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        by_lower = {str(c).lower(): c for c in df.columns}
        hints = [f" (there is '{by_lower[m]}': names are lower case)" if m in by_lower else "" for m in missing]
        raise TrainingDataError(
            f"{where.name}: missing required column(s): "
            + ", ".join(f"'{m}'{h}" for m, h in zip(missing, hints, strict=True))
        )
    problems = _Problems(df, source)
    out = df.copy()

    resistance = df["resistance"].astype("string").str.strip().str.lower()
    problems.cells(
        "resistance", ~resistance.isin(["primary", "secondary"]).fillna(False).to_numpy(), '"primary" or "secondary"'
    )
    out["resistance"] = resistance
    for col in (*BINARY_REQUIRED, "os_event"):
        values = _numbers(df[col])
        problems.cells(col, ~np.isin(values, (0, 1)), "0 or 1")
        out[col] = values
    for col in OPTIONAL_BINARY:
        if col in df.columns:
            values = _numbers(df[col])
            problems.cells(col, ~(np.isin(values, (0, 1)) | _is_empty(df[col])), "0, 1 or empty (unknown)")
            out[col] = values
    months = _numbers(df["os_months"])
    problems.cells("os_months", ~(np.isfinite(months) & (months >= 0)), "a number of months, 0 or more")
    out["os_months"] = months

    regimen = df["second_line_regimen"].astype("string").str.strip().str.lower().fillna("")
    regimen_ok = regimen.isin(["", "tki", "tki_pd1"]).to_numpy()
    problems.cells("second_line_regimen", ~regimen_ok, '"tki", "tki_pd1" or empty (no second line)')
    out["second_line_regimen"] = regimen.astype(str)
    has_sl = regimen.isin(["tki", "tki_pd1"]).to_numpy()
    valid = {}
    for col in ("sl_pfs_months", "sl_os_months"):
        values = _numbers(df[col])
        valid[col] = np.isfinite(values) & (values >= 0)
        problems.cells(col, has_sl & ~valid[col], "a number of months, 0 or more (a second-line patient)")
        out[col] = np.where(has_sl, values, np.nan)
    for col in ("sl_pfs_event", "sl_os_event"):
        values = _numbers(df[col])
        problems.cells(col, has_sl & ~np.isin(values, (0, 1)), "0 or 1 (a second-line patient)")
        out[col] = np.where(has_sl, values, np.nan)
    sl_given = ~np.logical_and.reduce([_is_empty(df[c]) for c in SECOND_LINE_COLUMNS])
    problems.add(
        (regimen == "").to_numpy() & sl_given,
        lambda i: (
            "second-line values are given but column 'second_line_regimen' is empty: write 'tki' or "
            "'tki_pd1' there, or leave the second-line columns empty"
        ),
        "second-line values without a regimen",
    )
    both = has_sl & valid["sl_pfs_months"] & valid["sl_os_months"]
    problems.add(
        both & (out["sl_pfs_months"].to_numpy() > out["sl_os_months"].to_numpy() + 1e-9),
        lambda i: (
            f"column 'sl_pfs_months': {plain_value(df['sl_pfs_months'].iloc[i])} is more than "
            f"sl_os_months {plain_value(df['sl_os_months'].iloc[i])} (progression-free survival cannot "
            "exceed overall survival)"
        ),
        "column 'sl_pfs_months' above sl_os_months",
    )
    if problems.lines:
        count = len(problems.lines)
        raise TrainingDataError(
            f"{where.name} cannot be used: {count} problem{'s' if count > 1 else ''}:", problems.lines
        )

    out = out.reset_index(drop=True)
    for col in (*BINARY_REQUIRED, "os_event"):
        out[col] = out[col].astype(int)
    has_sl = pd.Series(has_sl)
    minimum = MIN_EVENTS[purpose]
    counts = {
        "primary": int((out["resistance"] == "primary").sum()),
        "secondary": int((out["resistance"] == "secondary").sum()),
        "sl_pfs_event": int(out.loc[has_sl, "sl_pfs_event"].sum()),
        "sl_os_event": int(out.loc[has_sl, "sl_os_event"].sum()),
    }
    for key, need in minimum.items():
        if counts[key] < need:
            what = f"patients with resistance='{key}'" if key in ("primary", "secondary") else f"events in '{key}'"
            raise TrainingDataError(f"{where.name}: too few {what}: {counts[key]} (need at least {need} to {purpose})")
    if purpose != "evaluate":
        for reg in ("tki", "tki_pd1"):
            if not (out["second_line_regimen"] == reg).any():
                raise TrainingDataError(f"{where.name}: column 'second_line_regimen': no patient with regimen '{reg}'")
    return out


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


def _ratio_dict(names: Sequence[str], coef: np.ndarray, cov: ArrayLike) -> dict[str, RatioCI]:
    from models._stats import Z_95

    se = np.sqrt(np.diag(np.asarray(cov)))
    return {
        n: RatioCI(estimate=float(np.exp(b)), low=float(np.exp(b - Z_95 * s)), high=float(np.exp(b + Z_95 * s)))
        for n, b, s in zip(names, coef, se, strict=True)
    }


def _cox_artifact(model: SecondLineCoxModel, recalibrated: bool, evaluation: dict[str, Any]) -> CoxArtifact:
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
    progress: Progress | None = None,
    source: DataSource | None = None,
) -> BundleArtifact:
    """Fit (or, with `base`, recalibrate) both models on a cohort table (validated here;
    `source` names the input in error messages, see `read_cohort`)."""
    from models._progress import stage

    started = time.perf_counter()
    recalibrate = base is not None
    cohort = validate_training_frame(cohort, recalibrate=recalibrate, source=source)
    evidence = load_evidence()
    X = cohort[list(RISK_FEATURES)].to_numpy(dtype=float)
    y = (cohort["resistance"] == "primary").to_numpy(dtype=int)

    with stage("primary-resistance model"):
        if base is not None:
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
                cox_evaluation[endpoint] = evaluate_c_index(
                    model, sl, n_boot=C_INDEX_RESAMPLES, seed=EVALUATION_SEED, progress=progress
                )
            except ValueError as exc:
                raise TrainingDataError(str(exc)) from None
            cox[endpoint] = _cox_artifact(model, recalibrate, cox_evaluation[endpoint])
    with stage("Kaplan-Meier reference curves"):
        curves = [KMReference(**c) for c in reference_km_curves(cohort)]

    version = f"{MODEL_VERSION_BASE}+{training_data_sha256[:8]}" + ("-recal" if recalibrate else "")
    metadata = Metadata(
        model_version=version,
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
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
        recalibrated_from=base.metadata.model_version if base is not None else None,
        training_seconds=round(time.perf_counter() - started, 3),
        demographics=demographics_from_cohort(cohort),
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


def train_from_reconstruction(seed: int | None = None, progress: Progress | None = None) -> BundleArtifact:
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
    """A cohort CSV as text cells, indexed by the file line each row starts on (the header is
    the first line that is neither blank nor a comment starting with "#"), and the file's SHA-256.
    Values are checked later, by `validate_training_frame`; here only the file's shape."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrainingDataError(f"cannot read training data {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TrainingDataError(
            f"line {line} of {path.name}: byte 0x{data[exc.start]:02x} is not UTF-8 text; save the file as CSV UTF-8"
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 0
    rows, lines, problems = [], [], []
    last_line = 0
    try:
        for record in reader:
            line, last_line = last_line + 1, reader.line_num  # a quoted value may span lines
            if not any(field.strip() for field in record):
                continue
            if header is None:
                if record[0].lstrip().startswith("#"):
                    continue
                header, header_line = [name.strip() for name in record], line
                continue
            # spreadsheets may add empty cells at the end of a line: those are harmless
            if len(record) < len(header) or any(field.strip() for field in record[len(header) :]):
                problems.append(
                    f"line {line} of {path.name}: {len(record)} values, but the header (line "
                    f"{header_line}) has {len(header)} columns"
                )
                continue
            rows.append(record[: len(header)])
            lines.append(line)
    except csv.Error as exc:
        raise TrainingDataError(f"line {reader.line_num} of {path.name}: not readable as CSV ({exc})") from exc
    if header is None:
        raise TrainingDataError(f"{path.name} is empty: expected a header line with the cohort columns")
    if len(header) == 1:
        for separator, name in ((";", '";"'), ("\t", "tabs"), ("|", '"|"')):
            if separator in header[0]:
                raise TrainingDataError(
                    f"line {header_line} of {path.name}: this file seems to be separated by {name}, not commas: "
                    "save it as CSV with commas between values (and points as decimal marks)"
                )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise TrainingDataError(
            f"line {header_line} of {path.name} (the header) names column(s) twice: "
            + ", ".join(f"'{d}'" for d in duplicates)
        )
    if problems:
        count = len(problems)
        shown = problems[:PROBLEMS_SHOWN_PER_CHECK]
        if count > len(shown):
            shown.append(f"{count - len(shown)} more lines with the wrong number of values")
        raise TrainingDataError(f"{path.name} cannot be used: {count} problem{'s' if count > 1 else ''}:", shown)
    frame = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
    return frame, hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CohortInput:
    """A cohort read from a file, ready for `train_bundle` or an evaluation."""

    frame: pd.DataFrame  # index: the CSV line or FHIR patient id of each row (see DataSource)
    sha256: str
    source: DataSource
    description: str  # as recorded in the artifact's metadata.training_data


def read_cohort(
    path: str | Path, terminology: str | Path | None = None, progress: Progress | None = None
) -> CohortInput:
    """A cohort CSV, or a FHIR Bulk Data export (a directory of *.ndjson files, or one file)."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".ndjson":
        from models.fhir_import import cohort_from_bulk_export

        frame = cohort_from_bulk_export(path, terminology_path=terminology, progress=progress)
        # hash of the derived table (the export itself may be many files)
        sha = hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()
        frame = frame.set_index("patient_id", drop=False)
        return CohortInput(frame, sha, DataSource(f"the FHIR export {path.name}", "patient"), f"file {path.name}")
    frame, sha = read_training_csv(path)
    return CohortInput(frame, sha, DataSource(path.name, "line"), f"file {path.name}")
