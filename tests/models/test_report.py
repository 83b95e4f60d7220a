from models.report import run_report


def test_report_reproduces_published_figures_without_flags(tmp_path):
    result = run_report(out_dir=tmp_path)
    assert result.flags == []
    sections = {r.section for r in result.rows}
    assert {"Table 1 counts", "Primary-resistance model (multivariable OR)", "OS from sorafenib start",
            "Second-line median PFS", "Second-line median OS", "Cox HR, second-line PFS",
            "Cox HR, second-line OS"} <= sections
    assert (tmp_path / "report.md").read_text().startswith("# Reproduction report")
    for name in ("ratios.png", "os_by_resistance.png", "second_line_km.png", "calibration.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "10.1177/17588359241299678" in result.markdown


def test_report_flags_a_figure_outside_its_ci(cohort, trained):
    from models.evidence import load_evidence
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

    flagged = report.ReportResult(rows=[report.Row("Cox HR", "tki_alone", "1.98 (1.35-2.91)", "9.00 (5-12)", True,
                                                   "outside published 95% CI")], markdown="# report\n")
    monkeypatch.setattr(report, "run_report", lambda out_dir=None, seed=None: flagged)
    assert main(["report"]) == 1
    assert "tki_alone" in capsys.readouterr().err
    clean = report.ReportResult(rows=[report.Row("Cox HR", "tki_alone", "1.98", "1.90", False)], markdown="# ok\n")
    monkeypatch.setattr(report, "run_report", lambda out_dir=None, seed=None: clean)
    assert main(["report"]) == 0
