"""Issue 25 (items 1 and 8): a model is described by its own artifact, never as the study's.

A model retrained on a small synthetic "local" cohort (another reconstruction, with a different n
and base rate) is loaded through CDS_MODEL_DIR into a live service; its cards and model card must
state its own training source, n, events, base rate and date, show the study's figures labelled
as the study's, and fill all 31 ONC HTI-1 source attributes. The shipped model keeps saying it was
fitted to the reconstruction.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import requests
from fhir_factory import (
    LENVATINIB,
    SORAFENIB,
    afp,
    alt,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    medication_request,
    progression,
)
from hook_calls import post_hook

from models.__main__ import main
from models.artifacts import BUNDLE_FILE, SHIPPED_DIR, demographics_from_cohort, read_bundle, save_bundle
from models.model_card import HTI1_PREDICTIVE_SOURCE_ATTRIBUTES
from models.reconstruct import DEFAULT_SEED, reconstruct_cohort, write_cohort_csv
from models.registry import load_bundle

SELECT = "hcc-systemic-therapy-select"
ORDER_DATE = "2026-11-20"
RECONSTRUCTED = "reconstructed from the study's published figures"
THE_STUDY = "the study: 165/424 (38.9%)"


@pytest.fixture(scope="module")
def local_cohort():
    """364 patients of another reconstruction, with fewer primary resistances than the study."""
    cohort = reconstruct_cohort(DEFAULT_SEED + 3)
    primary = cohort[cohort["resistance"] == "primary"].sample(n=105, random_state=1)
    secondary = cohort[cohort["resistance"] == "secondary"]
    return pd.concat([primary, secondary]).sample(frac=1, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def local_csv(local_cohort, tmp_path_factory):
    path = tmp_path_factory.mktemp("local") / "local.csv"
    write_cohort_csv(local_cohort, path)
    return path


@pytest.fixture(scope="module")
def retrained_dir(local_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("retrained")
    assert main(["train", "--data", str(local_csv), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def retrained(retrained_dir):
    return read_bundle(retrained_dir)


def _first_line(server) -> dict:
    record = [afp(1250.0, "2026-11-10"), alt(65.0, "2026-11-12"), *hcc_hbv_conditions()]
    draft = medication_request(SORAFENIB, ORDER_DATE, status="draft", rid="draft-sorafenib")
    (card,) = post_hook(server, hook_request("order-select", [draft], prefetch=full_prefetch(record)), SELECT)["cards"]
    return card


def _second_line(server) -> dict:
    record = [
        medication_request(SORAFENIB, "2026-03-01", status="completed"),
        *hcc_hbv_conditions(),
        progression("2026-05-01"),
    ]
    draft = medication_request(LENVATINIB, ORDER_DATE, status="draft", rid="draft-lenvatinib")
    (card,) = post_hook(server, hook_request("order-select", [draft], prefetch=full_prefetch(record)), SELECT)["cards"]
    return card


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)"


def _assert_all_hti1_attributes_filled(card: dict, markdown: str) -> None:
    attributes = card["hti1_source_attributes"]
    assert len(HTI1_PREDICTIVE_SOURCE_ATTRIBUTES) == 9
    assert sum(len(items) for _, _, items in HTI1_PREDICTIVE_SOURCE_ATTRIBUTES) == 31
    assert set(attributes) == {key for key, _, _ in HTI1_PREDICTIVE_SOURCE_ATTRIBUTES}
    for key, _, items in HTI1_PREDICTIVE_SOURCE_ATTRIBUTES:
        assert set(attributes[key]) == {attribute for attribute, _ in items}, key
        for attribute, wording in items:
            value = attributes[key][attribute]
            assert value not in (None, "", [], {}), f"{key}.{attribute} is empty"
            assert "None" not in json.dumps(value), f"{key}.{attribute}"
            assert wording in markdown, f"{key}.{attribute}: the regulation's wording is not on the card"
    assert "not available" not in markdown


def test_the_retrained_models_first_line_card_states_its_own_training_data(live_server, retrained_dir, retrained):
    md = retrained.metadata
    res = retrained.resistance
    assert (md.n, res.n_primary) == (364, 105)
    card = _first_line(live_server(model_dir=retrained_dir))
    rate = f"{100 * res.base_rate:.1f}%"
    assert f"vs {rate} training cohort" in card["summary"]
    detail = card["detail"]
    assert f"Rate in the data the model was fitted to: 105/364 ({rate}); {THE_STUDY}." in detail
    assert (
        f"Model: logistic regression on AFP > 400 ng/mL and ALT > 40 U/L, fitted to file local.csv, trained "
        f"{md.created[:10]} (n = 364, 105 with primary resistance; model {md.model_version}). "
        "The study's published ORs: AFP 1.75 (95% CI 1.14–2.68), ALT 1.77 (1.14–2.75)."
    ) in detail
    assert RECONSTRUCTED not in detail and "Study cohort rate" not in detail
    assert "The study: retrospective, two centres in China, 93.9% HBV, n = 424" in detail


def test_the_retrained_models_second_line_card_states_its_own_training_data(live_server, retrained_dir, retrained):
    md = retrained.metadata
    card = _second_line(live_server(model_dir=retrained_dir))
    detail = card["detail"]
    pfs, os_ = retrained.pfs, retrained.os
    assert (
        f"(Cox models fitted to file local.csv, trained {md.created[:10]}: {pfs.n} second-line patients, "
        f"{pfs.events} PFS and {os_.events} OS events;"
    ) in detail
    assert "optimism-corrected, on the data it was fitted to" in detail
    assert RECONSTRUCTED not in detail and "reconstructed cohort" not in detail
    assert "The study's regimen comparison is observational" in detail
    assert "Study medians (primary-resistance subgroup, n = 86)" in detail  # the study's, labelled


def test_the_retrained_models_model_card_is_its_own_with_all_31_hti1_attributes(
    live_server, retrained_dir, retrained, local_cohort
):
    server = live_server(model_dir=retrained_dir)
    card = requests.get(f"{server.url}/model-card.json", timeout=10).json()
    markdown = requests.get(f"{server.url}/model-card.md", timeout=10).text
    md = retrained.metadata
    assert card["model_version"] == md.model_version
    training = card["training_data"]
    assert training["source"] == "file local.csv" and training["reconstructed_from_the_study"] is False
    assert training["n"] == 364 and training["primary_resistance"] == _pct(105, 364)
    assert training["trained"] == md.created
    male = _pct(int(local_cohort["male"].sum()), 364)
    assert training["demographics"]["male"] == male  # recorded by training, not the study's 371/424
    assert card["study"]["patients"] == 424 and card["study"]["primary_resistance"] == _pct(165, 424)
    assert card["tripod_ai"]["participants"].startswith("364 patients, 105 with primary resistance")
    assert "the study, not this model's data: 424 patients" in card["tripod_ai"]["participants"]
    attributes = card["hti1_source_attributes"]
    development = attributes["development_details_and_input_features"]
    assert development["demographic_representativeness"]["training_data"]["male"] == male
    assert "race, ethnicity" in development["demographic_representativeness"]["training_data"]["not recorded"]
    assert development["demographic_representativeness"]["the_study"]["male"] == _pct(371, 424)
    assert "file local.csv" in development["relevance_to_deployed_setting"]
    assert "fitted to file local.csv (n = 364" in attributes["details_and_output"]["developer"]
    assert "not computed" in attributes["quantitative_performance"]["fairness_same_source"]
    for key in ("validity_local_data", "fairness_local_data"):
        assert "no local monitoring report loaded" in attributes["ongoing_maintenance"][key]
    assert "synthetic cohort reconstructed" not in markdown and RECONSTRUCTED not in json.dumps(attributes)
    assert "> This model was fitted to file local.csv (n = 364" in markdown
    _assert_all_hti1_attributes_filled(card, markdown)
    html = requests.get(f"{server.url}/model-card", timeout=10).text
    assert "file local.csv" in html and "<strong>n</strong>: 364" in html
    smart = requests.get(f"{server.url}/smart/model-card", timeout=10)
    assert smart.status_code == 200 and smart.headers["Content-Type"].startswith("text/markdown")
    assert smart.text == markdown  # the loaded model's card, not the shipped one's


def test_a_recalibrated_model_says_which_part_came_from_where(live_server, local_csv, tmp_path):
    out = tmp_path / "recal"
    assert (
        main(["train", "--data", str(local_csv), "--out", str(out), "--recalibrate", "--base", str(SHIPPED_DIR)]) == 0
    )
    base = read_bundle(SHIPPED_DIR).metadata.model_version
    server = live_server(model_dir=out)
    first, second = _first_line(server), _second_line(server)
    assert f"with the coefficients of model {base} and its intercept recalibrated to file local.csv" in first["detail"]
    assert (
        f"with the coefficients of model {base} and their baselines recalibrated to file local.csv" in second["detail"]
    )
    assert THE_STUDY in first["detail"]
    card = requests.get(f"{server.url}/model-card.json", timeout=10).json()
    assert card["training_data"]["recalibrated_from"] == base


def test_demographics_are_recorded_by_training_and_an_artifact_without_them_says_so(retrained, local_cohort, tmp_path):
    assert retrained.metadata.demographics == demographics_from_cohort(local_cohort)
    assert retrained.metadata.demographics["male"].recorded == 364
    older = retrained.metadata.model_copy(update={"demographics": None})  # as written before they were recorded
    save_bundle(retrained.model_copy(update={"metadata": older}), tmp_path)
    assert "demographics" not in json.loads((tmp_path / BUNDLE_FILE).read_text())["metadata"]
    bundle = load_bundle(tmp_path)  # an artifact without the field keeps a valid content hash
    card = bundle.model_card()
    assert card["training_data"]["demographics"].startswith("not recorded in this artifact")
    shown = card["hti1_source_attributes"]["development_details_and_input_features"]["demographic_representativeness"]
    assert shown["training_data"].startswith("not recorded in this artifact")
    assert shown["the_study"]["male"] == _pct(371, 424)  # the study's, labelled as such
    _assert_all_hti1_attributes_filled(card, bundle.model_card_markdown())


def test_the_shipped_model_still_says_it_was_fitted_to_the_reconstruction(server):
    first, second = _first_line(server), _second_line(server)
    assert "vs 38.9% cohort" in first["summary"]
    assert f"Rate in the data the model was fitted to: 165/424 (38.9%); {THE_STUDY}." in first["detail"]
    assert f"refitted to a cohort {RECONSTRUCTED}" in first["detail"]
    assert f"Cox models fitted to a cohort {RECONSTRUCTED}, not to patient data" in second["detail"]
    assert "optimism-corrected, on the reconstructed cohort" in second["detail"]
    card = requests.get(f"{server.url}/model-card.json", timeout=10).json()
    markdown = requests.get(f"{server.url}/model-card.md", timeout=10).text
    assert card["training_data"]["reconstructed_from_the_study"] is True and card["training_data"]["n"] == 424
    assert "synthetic cohort reconstructed" in markdown
    _assert_all_hti1_attributes_filled(card, markdown)
    smart = requests.get(f"{server.url}/smart/model-card", timeout=10)
    assert smart.status_code == 200 and smart.text == markdown


def test_smart_app_describes_the_loaded_model_not_the_shipped_one(retrained_dir):
    """The SMART app computes with the hook pipeline's bundle (CDS_MODEL_DIR) and says what it was
    fitted to; before, it loaded the shipped bundle whatever the service had loaded."""
    from datetime import date

    from cds_service.assessor import Assessor
    from cds_service.settings import Settings
    from cds_service.smart.assessment import build_view
    from fhir_mappers.terminology import load_terminology

    bundle = load_bundle(retrained_dir)
    record = [afp(1250.0, "2026-11-10"), alt(65.0, "2026-11-12"), *hcc_hbv_conditions()]
    view = build_view(
        None,
        "p1",
        record,
        as_of=date(2026, 11, 20),
        context=None,
        assessor=Assessor(Settings(), bundle, load_terminology()),
    )
    training = bundle.training
    assert view.rates.startswith(
        f"Rate in the data the model was fitted to: {training.primary_resistance}/{training.n} "
    )
    assert THE_STUDY in view.rates
    assert "local.csv" in view.fitted_to and "not the study's cohort" in view.fitted_to
    assert view.risk is not None
    assert view.risk.probability == pytest.approx(
        bundle.resistance.predict_risk(afp_over_400=True, alt_over_40=True).probability
    )
