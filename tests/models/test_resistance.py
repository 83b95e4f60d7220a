import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from models._stats import logistic_irls
from models.resistance import PrimaryResistanceModel


def test_risk_ordering_and_intervals(bundle):
    predict = bundle.resistance.predict_risk
    both, afp, alt, none = predict(True, True), predict(True, False), predict(False, True), predict(False, False)
    assert both.probability > afp.probability > none.probability
    assert both.probability > alt.probability > none.probability
    for r in (both, afp, alt, none):
        assert 0 < r.ci_low < r.probability < r.ci_high < 1
        assert r.base_rate == pytest.approx(165 / 424)
        assert 0.5 < r.auc < 1 and r.auc_ci[0] < r.auc < r.auc_ci[1]


def test_contributions_are_log_odds_of_present_markers(bundle):
    risk = bundle.resistance.predict_risk(True, False)
    by_name = {c.feature: c for c in risk.contributions}
    assert by_name["afp_over_400"].present and by_name["afp_over_400"].log_odds > 0
    assert by_name["afp_over_400"].odds_ratio == pytest.approx(np.exp(by_name["afp_over_400"].log_odds))
    assert not by_name["alt_over_40"].present and by_name["alt_over_40"].odds_ratio == 1.0
    logit = np.log(risk.probability / (1 - risk.probability))
    none = bundle.resistance.predict_risk(False, False)
    assert logit - np.log(none.probability / (1 - none.probability)) == pytest.approx(by_name["afp_over_400"].log_odds)


def test_predict_risk_rejects_unknown_markers(bundle):
    with pytest.raises(TypeError):
        bundle.resistance.predict_risk(None, True)


def test_estimator_shape_and_fisher_covariance(cohort):
    X = cohort[["afp_over_400", "alt_over_40"]].to_numpy(float)
    y = (cohort.resistance == "primary").to_numpy(int)
    model = PrimaryResistanceModel()
    assert model.get_params() == {"features": ("afp_over_400", "alt_over_40"), "max_iter": 1000}
    with pytest.raises(NotFittedError):
        model.predict_proba(X)
    assert model.fit(X, y) is model
    beta, cov = logistic_irls(np.column_stack([np.ones(len(y)), X]), y)
    np.testing.assert_allclose(np.concatenate([[model.intercept_], model.coef_]), beta, rtol=1e-5)
    np.testing.assert_allclose(model.covariance_, cov, rtol=1e-4)
    p, low, high = model.predict_interval(X[:5])
    np.testing.assert_allclose(p, model.predict_proba(X[:5])[:, 1])
    assert np.all(low < p) and np.all(p < high)
    assert set(model.odds_ratios_) == {"afp_over_400", "alt_over_40"}
