"""Versioned JSON model artifacts (never pickle), validated with pydantic on load.

One file, `bundle.json`, holds both models, the KM reference curves and the metadata. A
`content_sha256` over the canonical JSON of everything else lets a loader refuse a file that
was edited by hand or corrupted in transit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from hcc_evidence.errors import HccCdsError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = "1"
BUNDLE_FILE = "bundle.json"
SHIPPED_DIR = Path(__file__).parent / "artifacts"


class ArtifactError(HccCdsError):
    """A model artifact is missing, unreadable, invalid or has been tampered with."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatioCI(_Strict):
    estimate: float
    low: float
    high: float


class ResistanceEvaluation(_Strict):
    auc: float
    auc_ci: tuple[float, float]
    auc_optimism_corrected: float
    auc_cv: float
    calibration_slope_cv: float
    calibration_intercept_cv: float
    calibration_table: list[dict[str, Any]]
    bootstrap_resamples: int
    seed: int


class ResistanceArtifact(_Strict):
    features: list[str]
    intercept: float
    coefficients: list[float]
    covariance: list[list[float]] = Field(description="intercept first, then features")
    odds_ratios: dict[str, RatioCI]
    n: int
    n_primary: int
    base_rate: float
    recalibrated: bool = False
    evaluation: ResistanceEvaluation

    @field_validator("covariance")
    @classmethod
    def _square(cls, v: list[list[float]]) -> list[list[float]]:
        if any(len(row) != len(v) for row in v):
            raise ValueError("covariance must be square")
        return v


class Baseline(_Strict):
    times: list[float]
    cum_hazard: list[float]
    var_martingale: list[float]
    cov_term: list[list[float]]


class CoxArtifact(_Strict):
    endpoint: str
    time_origin: str = "second-line start"
    covariates: list[str]
    coefficients: list[float]
    covariance: list[list[float]]
    hazard_ratios: dict[str, RatioCI]
    baseline: Baseline
    n: int
    events: int
    max_time: float
    c_index: float
    c_index_ci: tuple[float, float]
    c_index_optimism_corrected: float
    recalibrated: bool = False


class KMReference(_Strict):
    label: str
    endpoint: str
    group: dict[str, str]
    n: int
    events: int
    median_months: float | None
    median_ci: tuple[float | None, float | None]
    times: list[float]
    survival: list[float]
    low: list[float]
    high: list[float]


# Cohort-table columns (models/README.md "Cohort columns") that describe who the training data
# were: the HTI-1 "demographic representativeness" of a model is read from these counts.
DEMOGRAPHIC_COLUMNS = ("male", "age_over_50", "hbv", "bclc_c", "child_pugh_b")


class DemographicCount(_Strict):
    """Patients of the training data with a yes/no characteristic, out of those it was recorded for."""

    count: int
    recorded: int


class Metadata(_Strict):
    model_version: str
    schema_version: str = SCHEMA_VERSION
    created: str
    training_data: str
    training_data_sha256: str
    n: int
    events: dict[str, int]
    seed: int | None  # set only when the training data is the reconstruction (models.reconstruct)
    software: dict[str, str]
    evidence_doi: str
    recalibrated_from: str | None = None
    training_seconds: float
    evaluation: dict[str, Any]
    # Filled by training with `demographics_from_cohort`; None: not recorded (artifacts written
    # before it existed, or a table without those columns). Left out of the JSON when None, so
    # older artifacts keep their content hash.
    demographics: dict[str, DemographicCount] | None = None

    @model_serializer(mode="wrap")
    def _omit_unrecorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("demographics") is None:
            data.pop("demographics", None)
        return data


def demographics_from_cohort(cohort: pd.DataFrame) -> dict[str, DemographicCount] | None:
    """`Metadata.demographics` for a validated cohort table (a pandas DataFrame): for each of
    DEMOGRAPHIC_COLUMNS it has, the patients with the characteristic (value 1) out of those with
    a 0/1 value. None when the table has none of the columns."""
    counts = {}
    for column in DEMOGRAPHIC_COLUMNS:
        if column not in cohort.columns:
            continue
        values = cohort[column]
        recorded = values.isin([0, 1]) | values.isin(["0", "1"])
        counts[column] = DemographicCount(
            count=int((values[recorded].astype(int) == 1).sum()), recorded=int(recorded.sum())
        )
    return counts or None


class BundleArtifact(_Strict):
    metadata: Metadata
    resistance: ResistanceArtifact
    pfs: CoxArtifact
    os: CoxArtifact
    covariate_patterns: list[dict[str, Any]]
    reference_curves: list[KMReference]
    content_sha256: str = ""


class TrainingSummary(BaseModel):
    """What a loaded model was fitted to, as its own artifact records it (never the study's
    figures): the cards and the model card describe the model from this alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str  # Metadata.training_data, as training wrote it
    reconstructed: bool  # fitted to the cohort reconstructed from the study's published figures
    n: int
    primary_resistance: int
    base_rate: float
    second_line_patients: int
    sl_pfs_events: int
    sl_os_events: int
    created: str  # when the artifact was written (ISO 8601)
    recalibrated_from: str | None  # the model whose coefficients were kept, for a recalibration
    demographics: dict[str, DemographicCount] | None

    @classmethod
    def of(cls, artifact: BundleArtifact) -> TrainingSummary:
        md = artifact.metadata
        return cls(
            source=md.training_data,
            reconstructed=md.seed is not None,
            n=md.n,
            primary_resistance=artifact.resistance.n_primary,
            base_rate=artifact.resistance.base_rate,
            second_line_patients=artifact.pfs.n,
            sl_pfs_events=artifact.pfs.events,
            sl_os_events=artifact.os.events,
            created=md.created,
            recalibrated_from=md.recalibrated_from,
            demographics=md.demographics,
        )

    @property
    def created_date(self) -> str:
        return self.created[:10]


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(artifact: BundleArtifact) -> str:
    payload = artifact.model_dump(mode="json", exclude={"content_sha256"})
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def save_bundle(artifact: BundleArtifact, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact = artifact.model_copy(update={"content_sha256": ""})
    artifact.content_sha256 = content_hash(artifact)
    path = directory / BUNDLE_FILE
    text = json.dumps(artifact.model_dump(mode="json"), indent=1, sort_keys=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_bundle(path: str | Path | None = None) -> BundleArtifact:
    """Read and validate an artifact; `path` is a directory holding bundle.json or the file."""
    path = Path(path) if path is not None else SHIPPED_DIR
    if path.is_dir():
        path = path / BUNDLE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"model artifact not found: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model artifact {path} is not readable JSON: {exc}") from exc
    try:
        artifact = BundleArtifact.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"model artifact {path} failed validation: {exc}") from exc
    if artifact.metadata.schema_version != SCHEMA_VERSION:
        raise ArtifactError(
            f"model artifact {path} has schema version {artifact.metadata.schema_version}, expected {SCHEMA_VERSION}"
        )
    if artifact.content_sha256 != content_hash(artifact):
        raise ArtifactError(f"model artifact {path} failed its integrity check (content_sha256 mismatch)")
    return artifact
