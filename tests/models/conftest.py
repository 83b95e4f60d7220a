"""Fixtures shared by the models tests: the default reconstruction and models are built once."""

from __future__ import annotations

import pandas as pd
import pytest

from models.reconstruct import DEFAULT_SEED, reconstruct_cohort, write_cohort_csv


@pytest.fixture(scope="session")
def cohort() -> pd.DataFrame:
    return reconstruct_cohort(DEFAULT_SEED)


@pytest.fixture(scope="session")
def trained():
    """The artifact trained from the default seed (its training time is measured in bench/run.py)."""
    from models.training import train_from_reconstruction

    return train_from_reconstruction()


@pytest.fixture(scope="session")
def artifact_dir(trained, tmp_path_factory):
    from models.artifacts import save_bundle

    directory = tmp_path_factory.mktemp("artifact")
    save_bundle(trained, directory)
    return directory


@pytest.fixture(scope="session")
def bundle(artifact_dir):
    from models.registry import load_bundle

    return load_bundle(artifact_dir)


@pytest.fixture(scope="session")
def other_cohort() -> pd.DataFrame:
    return reconstruct_cohort(DEFAULT_SEED + 7)


@pytest.fixture(scope="session")
def small_csv(other_cohort, tmp_path_factory):
    """A hospital-sized CSV in the cohort format: 260 patients of another reconstruction."""
    frame = other_cohort.sample(n=260, random_state=3).reset_index(drop=True)
    path = tmp_path_factory.mktemp("data") / "hospital.csv"
    write_cohort_csv(frame, path)
    return path
