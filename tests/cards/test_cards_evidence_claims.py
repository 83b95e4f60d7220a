"""Issue 21: the cards claim no more than the study and the reconstruction support. Each test
fails if its claim regresses: the apparent AUC, 'high risk', 'for this patient', a missing
guideline context, a converted value hidden."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_factory import afp
from test_cards_e2e import call, first_line_record, lenvatinib_draft, second_line_record, sorafenib_draft

ARTIFACT = json.loads((Path(__file__).resolve().parents[2] / "models" / "artifacts" / "bundle.json").read_text())
EVALUATION = ARTIFACT["resistance"]["evaluation"]


def test_the_first_line_card_shows_the_optimism_corrected_auc_never_the_apparent_one(server):
    (card,) = call(server, first_line_record(), [sorafenib_draft()])["cards"]
    corrected, apparent = EVALUATION["auc_optimism_corrected"], EVALUATION["auc"]
    optimism = apparent - corrected
    low, high = (bound - optimism for bound in EVALUATION["auc_ci"])
    assert f"AUC {corrected:.2f} (95% CI {low:.2f}–{high:.2f}), corrected by bootstrap" in card["detail"]
    assert f"10-fold cross-validated AUC {EVALUATION['auc_cv']:.2f}" in card["detail"]
    assert "High risk" not in card["summary"] and "high risk" not in card["detail"].lower()
    assert card["summary"].startswith("Estimated primary sorafenib resistance risk")


def test_second_line_estimates_are_for_patients_like_this_one_from_a_reconstruction(server):
    (card,) = call(server, second_line_record("2026-05-01"), [lenvatinib_draft()])["cards"]
    assert "for this patient" not in card["detail"]
    assert (
        "for patients like this one" in card["detail"]
        and "reconstructed from the study's published figures" in card["detail"]
    )
    c_index = ARTIFACT["pfs"]["c_index_optimism_corrected"]
    assert f"C-index PFS {c_index:.2f}" in card["detail"] and "optimism-corrected" in card["detail"]


def test_second_line_card_names_the_licensed_options_with_the_patients_afp_and_drafts_none_of_them(server):
    record = second_line_record("2026-05-01", extra=[afp(612, "2026-11-15")])
    (card,) = call(server, record, [lenvatinib_draft()])["cards"]
    detail = card["detail"]
    for option in ("regorafenib", "cabozantinib", "ramucirumab when AFP ≥ 400 ng/mL", "nivolumab + ipilimumab"):
        assert option in detail
    assert "this patient's AFP 612 ng/mL (meets ≥ 400 ng/mL)" in detail
    assert "reflects the study's practice" in detail
    labels = " ".join(s["label"] for s in card.get("suggestions") or [])
    assert "ramucirumab" not in labels and "regorafenib" not in labels and "cabozantinib" not in labels
    low = second_line_record("2026-05-01", extra=[afp(35, "2026-11-15")])
    assert (
        "this patient's AFP 35 ng/mL (below ≥ 400 ng/mL)"
        in call(server, low, [lenvatinib_draft()])["cards"][0]["detail"]
    )


def test_a_converted_marker_is_shown_beside_the_value_as_received(server):
    # 340 IU/mL x 1.21 ng/IU = 411.4 ng/mL: above 400 ng/mL although the number as received is not.
    record = first_line_record(afp_value=340, unit="IU/mL", ucum="[IU]/mL")
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert "| 340 IU/mL (= 411.4 ng/mL) |" in card["detail"]
    plain = call(server, first_line_record(), [sorafenib_draft()])["cards"][0]
    assert "| 1250 ng/mL |" in plain["detail"], "no conversion is shown when none was made"


def test_alternatives_are_ordered_with_rxnorm_codes_and_afp_by_immunoassay_mass_is_read(server):
    record = first_line_record()
    record[0]["code"]["coding"][0]["code"] = "83073-7"  # AFP [Mass/volume] by immunoassay
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert "LOINC 83073-7" in card["detail"]
    atezo_bev = next(s for s in card["suggestions"] if "atezolizumab" in s["label"])
    codings = [
        a["resource"]["medicationCodeableConcept"]["coding"][0] for a in atezo_bev["actions"] if a["type"] == "create"
    ]
    assert {(c["system"], c["code"]) for c in codings} == {
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "1792776"),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "253337"),
    }


def test_atc_only_agents_are_never_drafted_until_a_hospital_gives_them_a_local_code(server, live_server, tmp_path):
    (card,) = call(server, second_line_record("2026-05-01"), [lenvatinib_draft()])["cards"]
    assert [s["label"] for s in card["suggestions"]] == [
        "Add a PD-1 inhibitor: nivolumab",
        "Add a PD-1 inhibitor: pembrolizumab",
    ]  # RxNorm-coded only
    local = tmp_path / "terminology.yaml"
    local.write_text(
        "version: 1\nextends: default\nsystems:\n  his: http://his.hospital.example.cn/drugs\n"
        'drugs:\n  sintilimab: {codes: [{system: his, code: "XD-0042", display: "信迪利单抗"}]}\n',
        encoding="utf-8",
    )
    hospital = live_server(terminology_path=local)
    (card,) = call(hospital, second_line_record("2026-05-01"), [lenvatinib_draft()])["cards"]
    first = card["suggestions"][0]
    assert first["label"] == "Add a PD-1 inhibitor: sintilimab"  # the agent the study names
    (coding,) = first["actions"][0]["resource"]["medicationCodeableConcept"]["coding"]
    assert (coding["system"], coding["code"]) == ("http://his.hospital.example.cn/drugs", "XD-0042")
