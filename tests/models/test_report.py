import numpy as np
import pytest

from models.report import run_report


def test_report_reproduces_published_figures_without_flags(tmp_path):
    result = run_report(out_dir=tmp_path)
    assert result.flags == []
    sections = {r.section for r in result.rows}
    assert {
        "Table 1 counts",
        "Primary-resistance model (multivariable OR)",
        "OS from sorafenib start",
        "Second-line median PFS",
        "Second-line median OS",
        "Cox HR, second-line PFS",
        "Cox HR, second-line OS",
    } <= sections
    assert (tmp_path / "report.md").read_text().startswith("# Reproduction report")
    for name in ("ratios.png", "os_by_resistance.png", "second_line_km.png", "calibration.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "10.1177/17588359241299678" in result.markdown


def test_report_flags_a_figure_outside_its_ci(cohort, trained):
    from hcc_evidence import load_evidence
    from models.report import build_rows

    artifact = trained.model_copy(deep=True)
    artifact.os.hazard_ratios["tki_alone"].estimate = 9.0
    rows = build_rows(cohort, artifact, load_evidence())
    flagged = [r for r in rows if r.flagged]
    assert [r.item for r in flagged] == ["tki_alone"]
    assert "outside published 95% CI" in flagged[0].note


def test_report_command_exits_1_when_a_row_is_flagged(monkeypatch, capsys):
    import models.report as report
    from models.__main__ import main

    flagged = report.ReportResult(
        rows=[report.Row("Cox HR", "tki_alone", "1.98 (1.35-2.91)", "9.00 (5-12)", True, "outside published 95% CI")],
        markdown="# report\n",
    )
    monkeypatch.setattr(report, "run_report", lambda out_dir=None, seed=None: flagged)
    assert main(["report"]) == 1
    assert "tki_alone" in capsys.readouterr().err
    clean = report.ReportResult(rows=[report.Row("Cox HR", "tki_alone", "1.98", "1.90", False)], markdown="# ok\n")
    monkeypatch.setattr(report, "run_report", lambda out_dir=None, seed=None: clean)
    assert main(["report"]) == 0


def test_median_tolerance_is_the_larger_of_15_percent_and_1_5_months():
    from models.report import _median_row, median_tolerance

    assert median_tolerance(4.5) == 1.5
    assert median_tolerance(31.0) == 31.0 * 0.15
    assert _median_row("s", "x", 8.0, 6.4).flagged  # the old 20% rule let this through
    assert not _median_row("s", "x", 8.0, 6.6).flagged
    assert _median_row("s", "x", 18.0, 14.6).flagged
    assert not _median_row("s", "x", 18.0, 15.4).flagged
    assert _median_row("s", "x", 10.0, None).flagged


def test_ratio_on_the_other_side_of_1_is_flagged_even_inside_the_ci():
    from hcc_evidence import RatioWithCI
    from models.artifacts import RatioCI
    from models.report import _ratio_row

    published = RatioWithCI(hr=1.16, low=0.79, high=1.70, p=0.45)
    inside_other_side = _ratio_row("Cox", "x", published, RatioCI(estimate=0.85, low=0.6, high=1.2))
    assert inside_other_side.flagged and "other side of 1" in inside_other_side.note
    assert _ratio_row("Cox", "x", published, RatioCI(estimate=0.64, low=0.45, high=0.92)).flagged
    assert not _ratio_row("Cox", "x", published, RatioCI(estimate=1.30, low=0.9, high=1.8)).flagged
    # a published 1.00 has no side
    one = RatioWithCI(or_=1.00, low=0.66, high=1.55, p=0.976)
    assert not _ratio_row("T1", "x", one, RatioCI(estimate=0.99, low=0.6, high=1.5)).flagged


def test_known_misses_are_listed_not_flagged_but_only_within_their_bounds():
    from models.report import KNOWN_MISSES, Row, _apply_known_misses

    key = ("Second-line median PFS", "all, combination")
    assert key in KNOWN_MISSES
    near = _apply_known_misses([Row(*key, "10.0", "12.0", True, "off")], {key: (8.0, 18.0)})[0]
    assert not near.flagged and near.known_miss
    far = _apply_known_misses([Row(*key, "10.0", "25.0", True, "off")], {key: (8.0, 18.0)})[0]
    assert far.flagged and not far.known_miss
    other = _apply_known_misses([Row("Second-line median PFS", "primary, combination", "8.0", "6.4", True)])[0]
    assert other.flagged


def test_report_covers_every_number_in_the_evidence_file(cohort, trained):
    from hcc_evidence import load_evidence
    from models.report import NOT_REPRODUCED, build_rows

    evidence = load_evidence()
    rows = build_rows(cohort, trained, evidence)
    items = {(r.section, r.item) for r in rows}
    for feature in evidence.table1_features:
        assert ("Table 1 univariate OR", feature) in items
        assert ("Table 1 univariate OR", f"{feature}, p (Wald, from the counts)") in items
    for endpoint in ("pfs", "os"):
        for cov in evidence.second_line.cox_multivariable[endpoint]:
            assert (f"Cox HR, second-line {endpoint.upper()}", cov) in items
            assert (f"Cox HR, second-line {endpoint.upper()}", f"{cov}, p") in items
    assert ("Cohort", "patients") in items
    assert sum(r.section.startswith("Second-line median") for r in rows) == 16
    assert sum(r.section == "OS from sorafenib start" for r in rows) == 8
    assert any("drug-level" in what for what, _ in NOT_REPRODUCED)
    # the figures the Table 2 of the evidence file does not contain are not invented
    assert not any("bclc" in r.item.lower() and r.section.startswith("Cox") for r in rows)


# --- evaluation of any artifact on any cohort (report --artifact/--data) -----------------------------


def test_report_evaluates_an_artifact_on_a_cohort_file(artifact_dir, small_csv, tmp_path, capsys):
    from models.__main__ import main

    out = tmp_path / "evaluation"
    assert main(["report", "--artifact", str(artifact_dir), "--data", str(small_csv), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    assert text.startswith("# Model evaluation: model 1.0.0+")
    assert "on hospital.csv" in text and "260 patients" in text
    for measure in (
        "| AUC |",
        "| calibration-in-the-large |",
        "| calibration slope |",
        "| Brier score |",
        "| C-index (Harrell) |",
        "| observed / expected events |",
        "| Brier score at 12 months |",
    ):
        assert measure in text
    assert "## Second-line PFS" in text and "## Second-line OS" in text
    assert "apparent figures" not in text  # another cohort than the training one
    assert (out / "calibration.png").stat().st_size > 1000


def test_report_on_the_training_cohort_says_the_figures_are_apparent(small_csv, tmp_path, capsys):
    from models.__main__ import main

    assert main(["train", "--data", str(small_csv), "--out", str(tmp_path / "m")]) == 0
    assert main(["report", "--artifact", str(tmp_path / "m" / "bundle.json"), "--data", str(small_csv)]) == 0
    assert "**This is the cohort the artifact was trained on**" in capsys.readouterr().out


def test_report_defaults_to_the_shipped_artifact_and_the_reconstruction(capsys):
    from models.__main__ import main

    assert main(["report", "--artifact", "models/artifacts"]) == 0
    text = capsys.readouterr().out
    assert "on the reconstructed cohort (seed 0)" in text and "apparent figures" in text


def test_report_on_bad_data_or_a_bad_artifact_exits_2(small_csv, tmp_path, capsys):
    from models.__main__ import main

    bad = tmp_path / "bad.csv"
    bad.write_text(small_csv.read_text().replace(",", ";"))
    assert main(["report", "--data", str(bad)]) == 2
    assert 'line 1 of bad.csv: this file seems to be separated by ";"' in capsys.readouterr().err
    assert main(["report", "--artifact", str(tmp_path / "absent")]) == 2
    assert "model artifact not found" in capsys.readouterr().err


def test_evaluation_on_the_training_data_is_calibrated_by_construction(cohort, trained):
    """On its own training data a maximum-likelihood model has calibration-in-the-large 0 and
    slope 1 (logistic), slope 1 and observed = expected events (Cox with Breslow baseline)."""
    from sklearn.metrics import roc_auc_score

    from models.evaluation import evaluate_artifact
    from models.training import validate_training_frame

    results = evaluate_artifact(trained, validate_training_frame(cohort))
    res = results["resistance"]
    assert res["calibration_in_the_large"].value == pytest.approx(0, abs=1e-6)
    assert res["calibration_slope"].value == pytest.approx(1, abs=1e-4)
    y = (cohort.resistance == "primary").to_numpy()
    X = cohort[["afp_over_400", "alt_over_40"]].to_numpy(float)
    p = 1 / (1 + np.exp(-(trained.resistance.intercept + X @ np.array(trained.resistance.coefficients))))
    assert res["auc"].value == pytest.approx(roc_auc_score(y, p))
    assert res["auc"].low < res["auc"].value < res["auc"].high
    assert res["brier"].value == pytest.approx(np.mean((p - y) ** 2))
    for endpoint in ("pfs", "os"):
        ev = results[endpoint]
        assert ev["observed_over_expected"].value == pytest.approx(1, abs=1e-6)
        assert ev["calibration_slope"].value == pytest.approx(1, abs=1e-3)
        # lifelines (the stored C) also counts pairs tied in time where one is an event
        assert ev["c_index"].value == pytest.approx(getattr(trained, endpoint).c_index, abs=1e-3)


def test_ipcw_brier_without_censoring_is_the_plain_brier_score():
    from models.evaluation import ipcw_brier

    rng = np.random.default_rng(1)
    times = rng.exponential(10, 200)
    predicted = rng.uniform(0, 1, 200)
    alive = times > 6
    assert ipcw_brier(times, np.ones(200, int), predicted, 6.0) == pytest.approx(np.mean((alive - predicted) ** 2))
