import json

import numpy as np
import pandas as pd
import pytest

from models.__main__ import main
from models.artifacts import BUNDLE_FILE


def _load(directory):
    return json.loads((directory / BUNDLE_FILE).read_text())


def test_reconstruct_command_writes_the_cohort(tmp_path, capsys, other_cohort):
    from models.reconstruct import DEFAULT_SEED, write_cohort_csv

    out = tmp_path / "cohort.csv"
    assert main(["reconstruct", "--out", str(out), "--seed", str(DEFAULT_SEED + 7)]) == 0
    expected = tmp_path / "expected.csv"
    write_cohort_csv(other_cohort, expected)
    assert out.read_bytes() == expected.read_bytes()
    assert "synthetic" in capsys.readouterr().out


def test_train_on_a_hospital_csv(small_csv, tmp_path):
    out = tmp_path / "model"
    assert main(["train", "--data", str(small_csv), "--out", str(out)]) == 0
    payload = _load(out)
    assert payload["metadata"]["n"] == 260
    assert payload["metadata"]["seed"] is None
    assert payload["metadata"]["training_data"] == "file hospital.csv"
    from models.registry import load_bundle

    bundle = load_bundle(out)
    assert 0 < bundle.resistance.predict_risk(True, True).probability < 1


def test_recalibrate_changes_only_intercept_and_baseline(small_csv, artifact_dir, tmp_path):
    out = tmp_path / "recal"
    assert (
        main(["train", "--data", str(small_csv), "--out", str(out), "--recalibrate", "--base", str(artifact_dir)]) == 0
    )
    before, after = _load(artifact_dir), _load(out)
    assert after["metadata"]["recalibrated_from"] == before["metadata"]["model_version"]
    assert after["metadata"]["model_version"].endswith("-recal")
    assert after["resistance"]["coefficients"] == before["resistance"]["coefficients"]
    assert after["resistance"]["intercept"] != before["resistance"]["intercept"]
    cov_before, cov_after = np.array(before["resistance"]["covariance"]), np.array(after["resistance"]["covariance"])
    np.testing.assert_array_equal(cov_after[1:, 1:], cov_before[1:, 1:])
    for endpoint in ("pfs", "os"):
        assert after[endpoint]["coefficients"] == before[endpoint]["coefficients"]
        assert after[endpoint]["covariance"] == before[endpoint]["covariance"]
        assert after[endpoint]["baseline"] != before[endpoint]["baseline"]
        assert after[endpoint]["recalibrated"] is True


@pytest.fixture
def frame(small_csv):
    return pd.read_csv(small_csv)


def _train(frame, tmp_path, capsys, *extra):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "out"), *extra])
    return code, capsys.readouterr().err


def test_missing_column_is_named(frame, tmp_path, capsys):
    code, err = _train(frame.drop(columns=["alt_over_40"]), tmp_path, capsys)
    assert code == 2 and "alt_over_40" in err and "missing" in err
    assert not (tmp_path / "out").exists()


def test_bad_value_names_column_and_row(frame, tmp_path, capsys):
    frame.loc[4, "afp_over_400"] = 7
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2 and "line 6 of bad.csv, column 'afp_over_400': \"7\", expected 0 or 1" in err


def test_bad_resistance_label(frame, tmp_path, capsys):
    frame.loc[0, "resistance"] = "partial"
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2 and "line 2 of bad.csv, column 'resistance': \"partial\"" in err


def test_second_line_patient_without_times(frame, tmp_path, capsys):
    i = frame.index[frame.second_line_regimen.notna()][0]
    frame.loc[i, "sl_os_months"] = np.nan
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2 and f"line {i + 2} of bad.csv, column 'sl_os_months': empty" in err


def test_too_few_events(frame, tmp_path, capsys):
    code, err = _train(frame.head(60), tmp_path, capsys)
    assert code == 2 and "too few" in err


def test_unreadable_data_file(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o")])
    assert code == 2 and "cannot read" in capsys.readouterr().err


# --- input errors: each problem once, by its line in the file, in plain words -----------------------


def _write(tmp_path, text: str, name: str = "cohort.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _errors(path, tmp_path, capsys) -> tuple[int, str]:
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err


def test_empty_cells_are_called_empty_never_a_numpy_repr(frame, tmp_path, capsys):
    frame.loc[5, "afp_over_400"] = np.nan
    frame.loc[3, "os_months"] = np.nan
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2
    assert "line 7 of bad.csv, column 'afp_over_400': empty, expected 0 or 1" in err
    assert "line 5 of bad.csv, column 'os_months': empty, expected a number of months" in err
    assert "np." not in err and "nan" not in err.lower() and "row" not in err
    assert "2 problems" in err


def test_each_problem_is_reported_once(frame, tmp_path, capsys):
    i = int(frame.index[frame.second_line_regimen.notna()][0])
    frame = frame.astype({"sl_pfs_months": object, "male": object})
    frame.loc[i, "sl_pfs_months"] = "soon"  # a bad value: not also "PFS > OS"
    frame.loc[0, "male"] = "yes"  # an optional column, checked when present
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2
    problems = [line.strip() for line in err.splitlines()[1:]]
    assert problems == [
        "line 2 of bad.csv, column 'male': \"yes\", expected 0, 1 or empty (unknown)",
        f"line {i + 2} of bad.csv, column 'sl_pfs_months': \"soon\", expected a number of months, 0 or more "
        "(a second-line patient)",
    ]


def test_many_bad_values_in_a_column_show_five_then_the_other_lines(frame, tmp_path, capsys):
    frame["os_event"] = "dead"
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2
    assert err.count("column 'os_event': \"dead\", expected 0 or 1") == 5
    assert "column 'os_event': 255 more like these, on lines 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 and 245 more" in err


def test_pfs_longer_than_os_and_second_line_values_without_a_regimen(frame, tmp_path, capsys):
    sl = frame.index[frame.second_line_regimen.notna()]
    none = frame.index[frame.second_line_regimen.isna()]
    frame.loc[sl[0], "sl_pfs_months"] = frame.loc[sl[0], "sl_os_months"] + 5
    frame.loc[none[0], "sl_os_months"] = 4.5
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2
    assert f"line {sl[0] + 2} of bad.csv, column 'sl_pfs_months'" in err and "more than sl_os_months" in err
    assert (
        f"line {none[0] + 2} of bad.csv, second-line values are given but column 'second_line_regimen' is empty"
    ) in err


def test_missing_column_in_another_case_is_pointed_out(frame, tmp_path, capsys):
    code, err = _train(frame.rename(columns={"afp_over_400": "AFP_over_400"}), tmp_path, capsys)
    assert code == 2 and "'afp_over_400' (there is 'AFP_over_400': names are lower case)" in err


@pytest.mark.parametrize(("separator", "said"), [(";", 'separated by ";"'), ("\t", "separated by tabs")])
def test_a_csv_separated_by_semicolons_or_tabs_is_recognised(small_csv, tmp_path, capsys, separator, said):
    text = small_csv.read_text().replace(",", separator)
    code, err = _errors(_write(tmp_path, text), tmp_path, capsys)
    assert code == 2
    assert err.strip() == (
        f"error: line 1 of cohort.csv: this file seems to be {said}, not commas: save it as CSV "
        "with commas between values (and points as decimal marks)"
    )


def test_lines_count_comments_blank_lines_and_quoted_line_breaks(small_csv, tmp_path, capsys):
    header, first, second, *rest = small_csv.read_text().splitlines()
    bad = second.replace("primary", "partial").replace("secondary", "partial")
    quoted = first.replace(first.split(",")[0], '"R\nsplit"', 1)  # a value over two lines (4 and 5)
    text = "\n".join(["# exported 2026-11-30", header, "", quoted, bad, *rest]) + "\n"
    code, err = _errors(_write(tmp_path, text), tmp_path, capsys)
    assert code == 2 and "line 6 of cohort.csv, column 'resistance': \"partial\"" in err


def test_a_line_with_the_wrong_number_of_values(small_csv, tmp_path, capsys):
    lines = small_csv.read_text().splitlines()
    lines[3] = lines[3] + ",7"
    lines[5] = ",".join(lines[5].split(",")[:-2])
    code, err = _errors(_write(tmp_path, "\n".join(lines) + ",\n"), tmp_path, capsys)  # a trailing empty cell is fine
    assert code == 2
    assert "line 4 of cohort.csv: 29 values, but the header (line 1) has 28 columns" in err
    assert "line 6 of cohort.csv: 26 values, but the header (line 1) has 28 columns" in err


def test_a_file_that_is_not_utf8_names_its_line(small_csv, tmp_path, capsys):
    data = small_csv.read_bytes().replace(b"R0", "R\u00e90".encode("latin-1"), 3)
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    code, err = _errors(path, tmp_path, capsys)
    assert code == 2 and "line 2 of latin1.csv: byte 0xe9 is not UTF-8 text; save the file as CSV UTF-8" in err


# --- where train writes -----------------------------------------------------------------------------


def test_train_writes_a_new_directory_by_default_never_the_shipped_one(small_csv, tmp_path, monkeypatch, capsys):
    import models.artifacts as artifacts

    shipped = artifacts.SHIPPED_DIR / BUNDLE_FILE
    before = shipped.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(small_csv)]) == 0
    out = capsys.readouterr().out
    written = list(tmp_path.glob("model-*/bundle.json"))
    assert len(written) == 1
    version = json.loads(written[0].read_text())["metadata"]["model_version"]
    assert written[0].parent.name == f"model-{version}"
    assert f"wrote {written[0].relative_to(tmp_path)}" in out and "CDS_MODEL_DIR=" in out
    assert shipped.read_bytes() == before


def test_train_refuses_the_shipped_directory_without_the_flag(tmp_path, monkeypatch, capsys):
    import models.artifacts as artifacts

    fake_shipped = tmp_path / "artifacts"
    monkeypatch.setattr(artifacts, "SHIPPED_DIR", fake_shipped)
    assert main(["train", "--out", str(fake_shipped)]) == 2
    assert "--replace-shipped" in capsys.readouterr().err
    assert not fake_shipped.exists()
    assert main(["train", "--replace-shipped", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--replace-shipped"]) == 0
    assert (fake_shipped / BUNDLE_FILE).exists()


def test_training_records_who_the_data_were(small_csv, tmp_path):
    out = tmp_path / "model"
    assert main(["train", "--data", str(small_csv), "--out", str(out)]) == 0
    metadata = _load(out)["metadata"]
    frame = pd.read_csv(small_csv)
    assert metadata["demographics"]["male"] == {"count": int(frame.male.sum()), "recorded": 260}
    assert metadata["demographics"]["hbv"]["count"] == int(frame.hbv.sum())
