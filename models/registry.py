"""The models as the service sees them: load a JSON artifact once, predict many times.

    from models.registry import load_bundle
    bundle = load_bundle()                      # the shipped models/artifacts/
    bundle.resistance.predict_risk(afp_over_400=True, alt_over_40=False)
    bundle.survival_comparison(primary_resistance=True, tumour_size_over_5cm=None, multiple_tumours=True)

Everything a prediction needs is computed at load time (per-pattern risks, baseline arrays).
Both predictions depend on a handful of yes/no/unknown inputs only (4 risk answers, 27 survival
comparisons), so each answer is computed once per process and then shared: treat results as
read-only (the models are frozen).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.artifacts import ArtifactError, BundleArtifact, KMReference, Metadata, TrainingSummary, read_bundle
from models.resistance import Contribution, RiskEstimate
from models.survival import (
    PATIENT_COVARIATES,
    SurvivalCurveEngine,
    SurvivalEstimate,
    marginal_mixture,
)

__all__ = ["ArtifactError", "ModelBundle", "RegimenComparison", "RiskEstimate", "SurvivalEstimate", "load_bundle"]

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
        from models._stats import Z_95

        x = np.array([1.0, float(afp), float(alt)])
        eta = float(x @ np.concatenate([[self.intercept], self.coefficients]))
        se = float(np.sqrt(x @ self.covariance @ x))
        expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        contributions = [
            Contribution(feature=f, present=bool(v), log_odds=float(b * v), odds_ratio=float(np.exp(b * v)))
            for f, b, v in zip(self.features, self.coefficients, (afp, alt), strict=True)
        ]
        return RiskEstimate(
            probability=float(expit(eta)),
            ci_low=float(expit(eta - Z_95 * se)),
            ci_high=float(expit(eta + Z_95 * se)),
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
        is listed in `marginalised_covariates`. Computed once per combination (~1 ms), then shared."""
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

    def model_card(self) -> dict:
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
