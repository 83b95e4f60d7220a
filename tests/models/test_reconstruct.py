import io

import numpy as np
import pytest

from models.evidence import load_evidence
from models.reconstruct import (
    DEFAULT_SEED,
    afp_alt_joint_counts,
    cohort_columns,
    dropout_rate,
    reconstruct_cohort,
    write_cohort_csv,
)

EVIDENCE = load_evidence()


def test_columns_are_the_documented_ones(cohort):
    assert list(cohort.columns) == cohort_columns()
    for feature in EVIDENCE.table1_features:
        assert feature in cohort.columns
    assert cohort["patient_id"].is_unique
    assert len(cohort) == EVIDENCE.cohort.n


@pytest.mark.parametrize("feature", EVIDENCE.table1_features)
def test_table1_counts_exact_in_both_groups(cohort, feature):
    primary, secondary = EVIDENCE.table1_counts[feature][:2]
    assert cohort.loc[cohort.resistance == "primary", feature].sum() == primary
    assert cohort.loc[cohort.resistance == "secondary", feature].sum() == secondary
    assert set(cohort[feature].unique()) <= {0, 1}


def test_group_sizes_and_regimen_counts(cohort):
    assert (cohort.resistance == "primary").sum() == EVIDENCE.cohort.n_primary
    assert (cohort.resistance == "secondary").sum() == EVIDENCE.cohort.n_secondary
    regimen = cohort.second_line_regimen.fillna("")
    for key, n in EVIDENCE.second_line.n.items():
        group, kind = key.split("_")
        code = "tki_pd1" if kind == "combination" else "tki"
        assert ((cohort.resistance == group) & (regimen == code)).sum() == n


def test_second_line_columns_empty_without_second_line_and_consistent_with_it(cohort):
    sl = cohort.second_line_regimen.fillna("") != ""
    cols = ["sl_pfs_months", "sl_pfs_event", "sl_os_months", "sl_os_event"]
    assert cohort.loc[~sl, cols].isna().all().all()
    assert cohort.loc[sl, cols].notna().all().all()
    d = cohort.loc[sl]
    assert (d.sl_pfs_months <= d.sl_os_months).all()
    # OS from sorafenib start includes the time to second line
    assert (d.os_months >= d.sl_os_months).all()
    assert (d.os_event == d.sl_os_event).all()
    assert (cohort.os_months > 0).all()


def test_follow_up_within_enrolment_and_cutoff(cohort):
    # sorafenib started 2019-01..2023-01, cut-off end of 2023-11: at most ~59 months of follow-up
    assert cohort.os_months.max() <= 59.0


def _csv(frame) -> str:
    buffer = io.StringIO()
    write_cohort_csv(frame, buffer)
    return buffer.getvalue()


def test_deterministic_for_a_seed_and_different_across_seeds(cohort, other_cohort):
    assert _csv(cohort) == _csv(reconstruct_cohort(DEFAULT_SEED))
    assert _csv(cohort) != _csv(other_cohort)


def test_afp_alt_overlap_matches_multivariable_ors_closely(cohort):
    from models._stats import logistic_irls

    overlap = afp_alt_joint_counts(EVIDENCE)
    for group, k in overlap.items():
        d = cohort[cohort.resistance == group]
        assert ((d.afp_over_400 == 1) & (d.alt_over_40 == 1)).sum() == k
    X = np.column_stack([np.ones(len(cohort)), cohort.afp_over_400, cohort.alt_over_40])
    beta, _ = logistic_irls(X, (cohort.resistance == "primary").to_numpy(float))
    published = EVIDENCE.resistance_model_multivariable
    # integer cells cannot hit both ORs exactly; within 10% of each
    assert abs(np.exp(beta[1]) / published["afp_over_400"].ratio - 1) < 0.10
    assert abs(np.exp(beta[2]) / published["alt_over_40"].ratio - 1) < 0.10


def test_censoring_reproduces_published_median_follow_up(cohort):
    from lifelines import KaplanMeierFitter

    assert dropout_rate(EVIDENCE) > 0
    reverse = KaplanMeierFitter().fit(cohort.os_months, 1 - cohort.os_event)
    assert reverse.median_survival_time_ == pytest.approx(EVIDENCE.cohort.median_follow_up_months, rel=0.10)


def test_secondary_patients_survive_the_primary_window(cohort):
    # secondary resistance = progression after 3 months, so every such patient is alive and
    # followed beyond it
    secondary = cohort[cohort.resistance == "secondary"]
    assert (secondary.os_months > EVIDENCE.cohort.primary_resistance_window_months).all()
