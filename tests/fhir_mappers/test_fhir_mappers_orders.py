"""Draft orders: which drug is being ordered, cheaply."""

from __future__ import annotations

from datetime import date

from fhir_mappers.orders import DrugClass, classify_draft_orders


def test_order_sign_considers_every_draft_order(fixture, terminology):
    summary = classify_draft_orders(fixture("draft_orders.json"), None, terminology)
    classes = {o.resource_id: (o.drug, o.drug_class) for o in summary.orders}
    assert classes == {
        "draft-sora": ("sorafenib", DrugClass.SORAFENIB),
        "draft-lenva": ("lenvatinib", DrugClass.TKI),
        "draft-pembro": ("pembrolizumab", DrugClass.PD1_INHIBITOR),
        "draft-amox": (None, DrugClass.IRRELEVANT),
    }
    assert summary.is_relevant and summary.has_pd1_inhibitor
    assert [o.reference for o in summary.sorafenib_orders] == ["MedicationRequest/draft-sora"]
    assert summary.sorafenib_orders[0].coding.code == "597747"  # from the contained Medication
    assert [o.drug for o in summary.tki_orders] == ["lenvatinib"]
    assert summary.order_date == date(2025, 3, 10)
    assert summary.model_dump(mode="json")["orders"][0]["drug_class"] == "sorafenib"


def test_order_select_considers_only_the_selected_orders(fixture, terminology):
    summary = classify_draft_orders(fixture("draft_orders.json"), ["MedicationRequest/draft-amox"], terminology)
    assert [o.resource_id for o in summary.orders] == ["draft-amox"]
    assert not summary.is_relevant
    assert summary.order_date is None
    summary = classify_draft_orders(fixture("draft_orders.json"), ["MedicationRequest/draft-pembro"], terminology)
    assert summary.has_pd1_inhibitor and not summary.sorafenib_orders
    assert summary.order_date == date(2025, 3, 10)


def test_name_match_when_no_code_is_known(terminology):
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "x", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"text": "Camrelizumab 200 mg IV q3w"}}}]}
    summary = classify_draft_orders(bundle, None, terminology)
    assert summary.orders[0].drug == "camrelizumab" and summary.has_pd1_inhibitor


def test_garbage_never_raises(terminology):
    for bad in (None, {}, {"entry": "x"}, {"entry": [None, 1, {"resource": "x"}, {"resource": {"resourceType": 3}}]}, []):
        assert classify_draft_orders(bad, None, terminology).orders == []  # type: ignore[arg-type]
    assert classify_draft_orders({"entry": []}, [None, 5], terminology).orders == []  # type: ignore[list-item]
