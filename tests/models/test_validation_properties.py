"""Whatever a hospital CSV holds in a cell, training fails with TrainingDataError naming the
column, never with a stray exception."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.training import TrainingDataError, validate_training_frame

BINARY = ["afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours", "os_event"]
bad_values = st.one_of(
    st.text(min_size=1, max_size=5).filter(lambda s: s.strip() not in {"0", "1", "0.0", "1.0"}),
    st.integers().filter(lambda v: v not in (0, 1)),
    st.floats(allow_nan=True).filter(lambda v: v not in (0.0, 1.0)),
    st.none(),
)


@pytest.fixture(scope="module")
def frame(small_csv):
    return pd.read_csv(small_csv)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(BINARY), row=st.integers(0, 259), value=bad_values)
def test_any_bad_binary_cell_is_named(frame, column, row, value):
    corrupted = frame.copy()
    corrupted[column] = corrupted[column].astype(object)
    corrupted.loc[row, column] = value
    with pytest.raises(TrainingDataError) as info:
        validate_training_frame(corrupted)
    assert column in str(info.value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 259), value=st.one_of(st.floats(max_value=-1e-6), st.text(min_size=1, max_size=4), st.none()))
def test_any_bad_survival_time_is_named(frame, row, value):
    corrupted = frame.copy()
    corrupted["os_months"] = corrupted["os_months"].astype(object)
    corrupted.loc[row, "os_months"] = value
    try:
        float(value)  # numeric strings like "1e3" are fine
        if value is not None and float(value) >= 0 and np.isfinite(float(value)):
            return
    except (TypeError, ValueError):
        pass
    with pytest.raises(TrainingDataError, match="os_months"):
        validate_training_frame(corrupted)
