"""models.monitoring against known values, scikit-learn and lifelines (the test environment has
them; the monitoring job does not, which is why models.monitoring reimplements the figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import monitoring
from models.monitoring import Estimate


def known(estimate: Estimate) -> tuple[float, float, float]:
    """(estimate, low, high), each known."""
    assert estimate.estimate is not None and estimate.low is not None and estimate.high is not None
    return estimate.estimate, estimate.low, estimate.high


def test_auc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert monitoring.auc_delong(y, s).estimate == 1.0
    assert monitoring.auc_delong(y, -s).estimate == 0.0


def test_auc_of_a_random_ranking_is_a_half_within_its_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 4000)
    auc, low, high = known(monitoring.auc_delong(y, rng.random(4000)))
    assert abs(auc - 0.5) < 0.03
    assert low < 0.5 < high


def test_auc_with_ties_matches_scikit_learn_and_its_delong_interval_a_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    afp, alt = rng.random(600) < 0.35, rng.random(600) < 0.28
    p = 1 / (1 + np.exp(-(-0.83 + 0.56 * afp + 0.53 * alt)))  # four distinct risks: many ties
    y = rng.random(600) < p
    auc, low, high = known(monitoring.auc_delong(y, p))
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    boots = []
    for _ in range(400):
        i = rng.integers(0, 600, 600)
        boots.append(roc_auc_score(y[i], p[i]))
    half_width = (high - low) / 2
    assert half_width == pytest.approx(1.96 * np.std(boots), rel=0.2)


def test_auc_needs_both_outcomes():
    assert monitoring.auc_delong([1, 1], [0.2, 0.4]).estimate is None


def test_calibration_slope_one_and_intercept_zero_on_data_drawn_from_the_model():
    rng = np.random.default_rng(3)
    p = 1 / (1 + np.exp(-rng.normal(-0.5, 1.0, 20000)))
    y = (rng.random(20000) < p).astype(int)
    figures = monitoring.binary_calibration(y, p)
    slope, slope_low, slope_high = known(figures.calibration_slope)
    assert slope_low < 1 < slope_high and abs(slope - 1) < 0.05
    _, intercept_low, intercept_high = known(figures.calibration_intercept)
    assert intercept_low < 0 < intercept_high
    assert figures.observed_expected_ratio == pytest.approx(1, abs=0.03)


def test_calibration_intercept_is_the_log_odds_ratio_of_a_shifted_population():
    rng = np.random.default_rng(4)
    p = 1 / (1 + np.exp(-rng.normal(-0.5, 1.0, 20000)))
    odds = 2 * p / (1 - p)  # events twice as likely, in odds
    y = (rng.random(20000) < odds / (1 + odds)).astype(int)
    intercept = monitoring.binary_calibration(y, p).calibration_intercept
    _, low, high = known(intercept)
    assert low < math.log(2) < high
    assert intercept.excludes(0.0)


def test_calibration_slope_below_one_for_overfitted_predictions():
    rng = np.random.default_rng(5)
    lp = rng.normal(0, 1, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-lp))).astype(int)
    p_extreme = 1 / (1 + np.exp(-2 * lp))  # twice as extreme as the truth
    assert monitoring.calibration_slope(y, p_extreme).estimate == pytest.approx(0.5, abs=0.05)


def test_calibration_figures_are_unknown_when_every_outcome_is_alike():
    figures = monitoring.binary_calibration([0, 0, 0], [0.2, 0.3, 0.4])
    assert figures.calibration_intercept.estimate is None
    assert figures.calibration_slope.estimate is None
    assert figures.brier == pytest.approx((0.04 + 0.09 + 0.16) / 3)


def test_calibration_curve_groups_by_distinct_prediction_with_wilson_intervals():
    y = np.array([1, 0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.3, 0.3, 0.3, 0.3, 0.6, 0.6, 0.6, 0.6])
    curve = monitoring.calibration_curve(y, p)
    assert [(g.n, g.predicted, g.observed.estimate) for g in curve] == [(4, 0.3, 0.25), (4, 0.6, 0.75)]
    # Wilson's interval for 1 of 4 (published tables: 0.046 to 0.699)
    assert curve[0].observed.low == pytest.approx(0.0456, abs=1e-3)
    assert curve[0].observed.high == pytest.approx(0.6994, abs=1e-3)


def test_kaplan_meier_and_greenwood_band_match_lifelines():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(6)
    t = np.round(rng.exponential(10, 300), 1)
    c = rng.exponential(15, 300)
    durations, events = np.minimum(t, c), (t <= c).astype(int)
    curve = monitoring.kaplan_meier(durations, events)
    fitter = KaplanMeierFitter().fit(durations, events)
    for months in (3.0, 6.0, 12.0):
        ours = monitoring.survival_at(curve, months, durations)
        assert ours.estimate == pytest.approx(float(fitter.survival_function_at_times(months).iloc[0]), abs=1e-12)
        band = fitter.confidence_interval_survival_function_
        row = band[band.index <= months].iloc[-1]
        assert ours.low == pytest.approx(row.iloc[0], abs=1e-6)
        assert ours.high == pytest.approx(row.iloc[1], abs=1e-6)


def test_survival_checks_compare_observed_with_mean_predicted_and_stop_at_follow_up():
    durations = [2.0, 4.0, 6.0, 8.0]
    events = [1, 0, 1, 0]
    _, checks = monitoring.survival_checks(durations, events, {6: [0.5, 0.7, None, 0.6], 12: [0.4, 0.5, 0.3, 0.2]})
    six, twelve = checks
    assert six.observed.estimate == pytest.approx(0.75 * 0.5)  # 1 - 1/4, then 1 - 1/2
    assert six.predicted == pytest.approx(0.6)
    assert six.difference == pytest.approx(0.375 - 0.6)
    assert twelve.observed.estimate is None and twelve.difference is None


def test_survival_before_any_event_has_a_clopper_pearson_lower_bound():
    curve = monitoring.kaplan_meier([7.0] * 20, [0] * 20)
    six = monitoring.survival_at(curve, 6.0, [7.0] * 20)
    assert (six.estimate, six.high) == (1.0, 1.0)
    assert six.low == pytest.approx(0.025 ** (1 / 20))  # 0.832: 20 patients followed, no event
    assert six.excludes(0.6) and not six.excludes(0.9)


def test_population_stability_index_known_value_and_zero_when_unchanged():
    assert monitoring.population_stability_index([0.5, 0.5], [50, 50]) == pytest.approx(0.0)
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert monitoring.population_stability_index([0.5, 0.5], [70, 30]) == pytest.approx(expected)
    assert monitoring.population_stability_index([0.5, 0.5], [0, 0]) is None
