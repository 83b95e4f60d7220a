import itertools

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.exceptions import NotFittedError

from models.registry import load_bundle
from models.survival import SecondLineCoxModel, second_line_frame

PATIENTS = list(itertools.product((True, False, None), repeat=3))


@pytest.mark.parametrize("primary,size,multiple", PATIENTS)
def test_combination_beats_tki_alone_and_intervals_bracket(bundle, primary, size, multiple):
    result = bundle.survival_comparison(primary, size, multiple)
    for endpoint in (result.pfs, result.os):
        tki, combo = endpoint["tki"], endpoint["tki_pd1"]
        if tki.median_months is None:  # not reached within follow-up (low-risk patients)
            assert combo.median_months is None
        else:
            assert combo.median_months is None or combo.median_months > tki.median_months
        assert combo.survival_at[12].survival > tki.survival_at[12].survival
        for est in (tki, combo):
            lo, hi = est.median_ci
            assert lo is None or lo <= (est.median_months or np.inf)
            assert hi is None or est.median_months is None or hi >= est.median_months
            for point in est.survival_at.values():
                if point.survival is not None:
                    assert point.low <= point.survival <= point.high
            c = est.curve
            assert len(c.times) == len(c.survival) == len(c.low) == len(c.high)
            assert np.all(np.diff(c.survival) <= 1e-12)
            assert np.all(np.array(c.low) <= np.array(c.survival) + 1e-12)
            assert np.all(np.array(c.survival) <= np.array(c.high) + 1e-12)
    expected = [
        n
        for n, v in zip(
            ("primary_resistance", "tumour_size_over_5cm", "multiple_tumours"), (primary, size, multiple), strict=True
        )
        if v is None
    ]
    assert result.marginalised_covariates == expected
    assert set(result.c_index) == {"pfs", "os"}


def test_each_combination_is_computed_once_then_shared_read_only(bundle, artifact_dir):
    first = bundle.survival_comparison(True, None, True)
    assert bundle.survival_comparison(True, None, True) is first
    assert bundle.survival_comparison(True, None, False) != first
    assert load_bundle(artifact_dir).survival_comparison(True, None, True) == first  # computed afresh: same figures
    with pytest.raises(ValidationError):
        first.os["tki"].median_months = 99.0


def test_marginalised_estimate_lies_between_the_known_ones(bundle):
    big = bundle.survival_comparison(True, True, True).os["tki"].survival_at[12].survival
    small = bundle.survival_comparison(True, False, True).os["tki"].survival_at[12].survival
    unknown = bundle.survival_comparison(True, None, True).os["tki"].survival_at[12].survival
    assert big < unknown < small


def test_cox_model_matches_lifelines_and_refuses_unfitted(cohort):
    from lifelines import CoxPHFitter

    sl = second_line_frame(cohort)
    model = SecondLineCoxModel("os")
    with pytest.raises(NotFittedError):
        _ = model.summary
    assert model.fit(sl) is model
    cols = ["primary_resistance", "tki_alone", "tumour_size_over_5cm"]
    reference = CoxPHFitter().fit(sl[cols + ["sl_os_months", "sl_os_event"]], "sl_os_months", "sl_os_event")
    np.testing.assert_allclose(model.summary["exp(coef)"], reference.hazard_ratios_[cols], rtol=1e-6)
    x = {"primary_resistance": 1, "tki_alone": 0, "tumour_size_over_5cm": 1}
    ours = model.predict_survival(x)
    theirs = reference.predict_survival_function(sl.iloc[:0].reindex([0]).assign(**x)[cols])
    t12 = theirs.index[theirs.index <= 12].max()
    assert ours.survival_at[12].survival == pytest.approx(float(theirs.loc[t12].iloc[0]), abs=0.01)
    assert 0.5 < model.c_index_ < 1


def test_c_index_evaluation_is_stored_and_consistent(bundle, cohort):
    from lifelines.utils import concordance_index

    from models._stats import harrell_c

    for art in (bundle.artifact.pfs, bundle.artifact.os):
        assert art.c_index_ci[0] < art.c_index < art.c_index_ci[1]
        assert 0.5 < art.c_index_optimism_corrected <= art.c_index
    sl = second_line_frame(cohort)
    risk = sl.primary_resistance * 0.7 + sl.tki_alone * 0.5
    ours = harrell_c(sl.sl_os_months, risk, sl.sl_os_event)
    assert ours == pytest.approx(concordance_index(sl.sl_os_months, -risk, sl.sl_os_event), abs=1e-3)
