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
    assert main(["train", "--data", str(small_csv), "--out", str(out), "--recalibrate", "--base", str(artifact_dir)]) == 0
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
    assert code == 2 and "afp_over_400" in err and "row 6" in err


def test_bad_resistance_label(frame, tmp_path, capsys):
    frame.loc[0, "resistance"] = "partial"
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2 and "resistance" in err and "row 2" in err


def test_second_line_patient_without_times(frame, tmp_path, capsys):
    i = frame.index[frame.second_line_regimen.notna()][0]
    frame.loc[i, "sl_os_months"] = np.nan
    code, err = _train(frame, tmp_path, capsys)
    assert code == 2 and "sl_os_months" in err and f"row {i + 2}" in err


def test_too_few_events(frame, tmp_path, capsys):
    code, err = _train(frame.head(60), tmp_path, capsys)
    assert code == 2 and "too few" in err


def test_unreadable_data_file(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o")])
    assert code == 2 and "cannot read" in capsys.readouterr().err
