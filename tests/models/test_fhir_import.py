import json

import numpy as np
import pandas as pd
import pytest
from bulk_export import write_bulk_export

from models.__main__ import main
from models.fhir_import import cohort_from_bulk_export
from models.training import TrainingDataError


@pytest.fixture(scope="module")
def export(small_csv, tmp_path_factory):
    frame = pd.read_csv(small_csv)
    directory = write_bulk_export(frame, tmp_path_factory.mktemp("bulk") / "export")
    return frame, directory, directory.parent / "terminology.yaml"


def test_bulk_export_maps_back_to_the_cohort_table(export):
    frame, directory, terminology = export
    mapped = cohort_from_bulk_export(directory, terminology_path=terminology)
    merged = frame.merge(mapped, on="patient_id", suffixes=("", "_fhir"))
    assert len(merged) == len(frame)
    for col in ("resistance", "afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours", "os_event"):
        assert (merged[col] == merged[f"{col}_fhir"]).all(), col
    assert (merged.second_line_regimen.fillna("") == merged.second_line_regimen_fhir).all()
    sl = merged.second_line_regimen.notna()
    for col in ("sl_pfs_event", "sl_os_event"):
        assert (merged.loc[sl, col] == merged.loc[sl, f"{col}_fhir"]).all(), col
    # dates are whole days: months agree to a day
    for col in ("os_months", "sl_pfs_months", "sl_os_months"):
        diff = (merged[col] - merged[f"{col}_fhir"].astype(float)).abs()
        assert np.nanmax(diff.to_numpy(float)) <= 0.05, col


def test_train_command_on_a_bulk_export(export, tmp_path):
    _, directory, terminology = export
    out = tmp_path / "model"
    assert main(["train", "--data", str(directory), "--terminology", str(terminology), "--out", str(out)]) == 0
    payload = json.loads((out / "bundle.json").read_text())
    assert payload["metadata"]["n"] == 260
    assert payload["metadata"]["training_data"] == "file export"


def test_patients_without_a_usable_feature_are_left_out_with_a_reason(export, capsys):
    _, directory, _ = export
    # the shipped terminology has no tumour-count code: multiple_tumours is unknown for
    # single-measurement patients, so nobody can be used
    with pytest.raises(TrainingDataError, match="no patient could be mapped"):
        cohort_from_bulk_export(directory)
    assert "multiple_tumours unknown" in capsys.readouterr().err


def test_bad_ndjson_line_is_named(tmp_path, capsys):
    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "a"}\n{oops\n')
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 2 of Patient.ndjson" in err


def test_report_evaluates_a_model_on_a_bulk_export(export, artifact_dir, tmp_path, capsys):
    _, directory, terminology = export
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--artifact",
                str(artifact_dir),
                "--data",
                str(directory),
                "--terminology",
                str(terminology),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = (out / "report.md").read_text()
    assert "on the FHIR export export" in text and "260 patients" in text and "| C-index (Harrell) |" in text
