import io

import numpy as np
import pytest

from hcc_evidence import load_evidence
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
    # the report's median tolerance (larger of 15% and 1.5 months); the dropout rate matches the
    # published 21.5 months in expectation, a seed's sample lands within about one SE of it
    from models.report import median_tolerance

    published = EVIDENCE.cohort.median_follow_up_months
    assert abs(reverse.median_survival_time_ - published) <= median_tolerance(published)


def test_secondary_patients_survive_the_primary_window(cohort):
    # secondary resistance = progression after 3 months, so every such patient is alive and
    # followed beyond it
    secondary = cohort[cohort.resistance == "secondary"]
    assert (secondary.os_months > EVIDENCE.cohort.primary_resistance_window_months).all()


def test_time_to_progression_follows_the_published_imaging_schedule(cohort):
    # progression is radiological: found at imaging every 8-12 weeks (evidence brief, Design).
    # Primary = progression at the first exam (8-12 weeks); secondary = exam 2 or later
    # (>= 16 weeks), the exam number geometric with the published primary share 165/424.
    from models.reconstruct import imaging_interval_months, progression_probability_per_exam

    lo, hi = imaging_interval_months()
    assert (lo, hi) == pytest.approx((8 * 7 / (365.25 / 12), 12 * 7 / (365.25 / 12)))
    sl = cohort[cohort.second_line_regimen.fillna("") != ""]
    gap = (sl.os_months - sl.sl_os_months).astype(float)
    primary = gap[sl.resistance == "primary"]
    secondary = gap[sl.resistance == "secondary"]
    assert primary.min() >= lo - 0.02 and primary.max() <= hi + 0.02
    assert secondary.min() >= 2 * lo - 0.02
    # mean exam number 1 + 1/p = 3.57, i.e. about 8.2 months at 10 weeks an interval
    p = progression_probability_per_exam(EVIDENCE)
    assert p == pytest.approx(165 / 424)
    expected = (1 + 1 / p) * (lo + hi) / 2
    assert abs(secondary.mean() - expected) < 2.0


def test_draw_progression_times_exam_structure():
    from models.reconstruct import draw_progression_times, imaging_interval_months

    lo, hi = imaging_interval_months()
    rng = np.random.default_rng(1)
    is_primary = np.arange(20000) < 7780
    t = draw_progression_times(rng, is_primary, EVIDENCE)
    assert t[is_primary].min() >= lo and t[is_primary].max() <= hi
    assert t[~is_primary].min() >= 2 * lo
    # share progressing at the second exam (<= 2 intervals) among secondary = p
    assert np.mean(t[~is_primary] <= 2 * hi) >= 165 / 424 - 0.01


def test_second_line_cell_medians_match_the_published_ones(cohort):
    # the four resistance x regimen cells are matched on the sample (last reconstruction step)
    from lifelines import KaplanMeierFitter

    from models.report import median_tolerance

    sl = cohort[cohort.second_line_regimen.fillna("") != ""]
    for endpoint in ("pfs", "os"):
        table = getattr(EVIDENCE.second_line, f"median_{endpoint}_months")
        for group in ("primary", "secondary"):
            for kind, code in (("combination", "tki_pd1"), ("tki", "tki")):
                d = sl[(sl.resistance == group) & (sl.second_line_regimen == code)]
                km = KaplanMeierFitter().fit(
                    d[f"sl_{endpoint}_months"].astype(float), d[f"sl_{endpoint}_event"].astype(int)
                )
                published = table[group][kind]
                assert abs(km.median_survival_time_ - published) <= median_tolerance(published), (endpoint, group, kind)
