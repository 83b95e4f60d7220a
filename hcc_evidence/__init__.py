"""The published figures of Lei et al. 2025, shipped with the package.

Every clinical number the product shows traces back to this file or to a model fitted in this
project; loading it through a pydantic model means a malformed edit fails loudly at start-up.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

EVIDENCE_FILE = "lei-2025-sorafenib-resistance.json"


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    citation: str
    doi: str

    @property
    def url(self) -> str:
        return f"https://doi.org/{self.doi}"


class Cohort(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    n_primary: int
    n_secondary: int
    enrolment: list[str]
    data_cutoff: str
    median_follow_up_months: float
    primary_resistance_window_months: int

    @property
    def primary_rate(self) -> float:
        return self.n_primary / self.n


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    afp_ng_per_ml: float
    alt_u_per_l: float
    ast_u_per_l: float
    tumour_size_cm: float
    age_years: float


class RatioWithCI(BaseModel):
    """An odds or hazard ratio with its 95% CI and p value, as published."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    or_: float | None = None
    hr: float | None = None
    low: float
    high: float
    p: float

    @property
    def ratio(self) -> float:
        value = self.or_ if self.or_ is not None else self.hr
        assert value is not None, "a published ratio has either 'or' or 'hr'"
        return value


class SurvivalByResistance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_origin: str
    median_months: dict[str, float]
    survival_at_months: dict[str, dict[str, float]]


class SecondLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_origin: str
    n: dict[str, int]
    tki_alone_regimens: dict[str, int]
    combination_regimens: dict[str, int]
    median_pfs_months: dict[str, dict[str, float]]
    median_os_months: dict[str, dict[str, float]]
    cox_multivariable: dict[str, dict[str, RatioWithCI]]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Source
    cohort: Cohort
    thresholds: Thresholds
    # Each row is [primary_n, secondary_n, or, or_low, or_high, p]; the `_columns` row names them.
    table1_counts: dict[str, list[Any]]
    resistance_model_multivariable: dict[str, RatioWithCI]
    os_all_patients_by_resistance: SurvivalByResistance
    second_line: SecondLine

    @property
    def table1_features(self) -> list[str]:
        """Table 1 feature names, in published order (the `_columns` header row excluded)."""
        return [key for key in self.table1_counts if not key.startswith("_")]


def _rename_or(obj: object) -> object:
    # "or" is a Python keyword; the JSON keeps the published spelling.
    if isinstance(obj, dict):
        return {("or_" if k == "or" else k): _rename_or(v) for k, v in obj.items()}
    return obj


@lru_cache(maxsize=1)
def load_evidence() -> Evidence:
    """Load and validate the bundled evidence file (cached: it never changes at run time)."""
    text = resources.files(__package__).joinpath(EVIDENCE_FILE).read_text(encoding="utf-8")
    raw = json.loads(text)
    raw["resistance_model_multivariable"] = _rename_or(raw["resistance_model_multivariable"])
    return Evidence.model_validate(raw)
