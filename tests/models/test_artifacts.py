import json
import shutil

import numpy as np
import pytest

from models.artifacts import BUNDLE_FILE, SHIPPED_DIR, ArtifactError, read_bundle, save_bundle
from models.registry import load_bundle

# when and how fast it ran, and on which library versions, may differ; every fitted number may not
VOLATILE = {"created", "training_seconds", "software"}


def _strip(payload):
    payload = dict(payload)
    payload.pop("content_sha256", None)
    payload["metadata"] = {k: v for k, v in payload["metadata"].items() if k not in VOLATILE}
    return payload


def _assert_same(a, b, path="") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), path
    else:
        assert a == b, path


def test_shipped_artifact_equals_training_from_default_seed(trained):
    shipped = json.loads((SHIPPED_DIR / BUNDLE_FILE).read_text())
    fresh = trained.model_dump(mode="json")
    _assert_same(_strip(shipped), _strip(fresh))


def test_round_trip_gives_identical_predictions(trained, tmp_path):
    from models.registry import ModelBundle

    direct = ModelBundle(trained)
    save_bundle(trained, tmp_path)
    loaded = load_bundle(tmp_path)
    assert loaded.version == direct.version
    for afp in (False, True):
        for alt in (False, True):
            assert loaded.resistance.predict_risk(afp, alt) == direct.resistance.predict_risk(afp, alt)
    args = dict(primary_resistance=True, tumour_size_over_5cm=None, multiple_tumours=False)
    assert loaded.survival_comparison(**args) == direct.survival_comparison(**args)
    assert loaded.reference_curves() == direct.reference_curves()


def _copy(artifact_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(artifact_dir, target)
    return target / BUNDLE_FILE


def test_tampered_artifact_is_refused(artifact_dir, tmp_path):
    path = _copy(artifact_dir, tmp_path)
    payload = json.loads(path.read_text())
    payload["resistance"]["coefficients"][0] += 0.5
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="integrity"):
        load_bundle(path.parent)


def test_unknown_field_is_refused(artifact_dir, tmp_path):
    path = _copy(artifact_dir, tmp_path)
    payload = json.loads(path.read_text())
    payload["resistance"]["pickled_model"] = "gASV..."
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="validation"):
        load_bundle(path)


@pytest.mark.parametrize("content", ["", "{not json", "[]"])
def test_unreadable_artifact_is_refused(tmp_path, content):
    (tmp_path / BUNDLE_FILE).write_text(content)
    with pytest.raises(ArtifactError):
        load_bundle(tmp_path)


def test_missing_artifact_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_bundle(tmp_path / "nowhere")


def test_shipped_bundle_loads_with_metadata():
    bundle = load_bundle()
    md = bundle.metadata
    assert bundle.version == md.model_version
    assert len(md.training_data_sha256) == 64
    assert md.seed is not None and md.n == 424
    assert {"python", "numpy", "scikit-learn", "lifelines"} <= set(md.software)
    assert "primary_resistance" in md.evaluation and "sl_pfs" in md.evaluation
    assert read_bundle().content_sha256


def test_model_card_is_json_and_cites_the_study(bundle):
    card = bundle.model_card()
    text = json.dumps(card)
    assert "10.1177/17588359241299678" in text
    attributes = card["hti1_source_attributes"]
    for key in (
        "details_and_output",
        "purpose",
        "cautioned_out_of_scope_use",
        "development_details_and_input_features",
        "fairness_process",
        "external_validation",
        "quantitative_performance",
        "ongoing_maintenance",
    ):
        assert key in attributes
    markdown = bundle.model_card_markdown()
    assert "synthetic" in markdown and "not patient data" in markdown
    assert "HTI-1" in markdown and "TRIPOD+AI" in markdown


def test_reference_curves_cover_the_published_subgroups(bundle):
    curves = bundle.reference_curves()
    keys = {(c.endpoint, tuple(sorted(c.group.items()))) for c in curves}
    assert ("os_from_sorafenib", (("resistance", "primary"),)) in keys
    assert ("sl_pfs", (("regimen", "tki_pd1"), ("resistance", "secondary"))) in keys
    for c in curves:
        assert len(c.times) == len(c.survival) == len(c.low) == len(c.high)
        assert np.all(np.diff(c.survival) <= 1e-12)
