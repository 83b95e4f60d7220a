"""Draft orders: which drug is being ordered, cheaply."""

from __future__ import annotations

from datetime import date

from fhir_mappers._common import medication_concept, medication_references
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
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "x",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {"text": "Camrelizumab 200 mg IV q3w"},
                }
            }
        ],
    }
    summary = classify_draft_orders(bundle, None, terminology)
    assert summary.orders[0].drug == "camrelizumab" and summary.has_pd1_inhibitor


def test_garbage_never_raises(terminology):
    for bad in (
        None,
        {},
        {"entry": "x"},
        {"entry": [None, 1, {"resource": "x"}, {"resource": {"resourceType": 3}}]},
        [],
    ):
        assert classify_draft_orders(bad, None, terminology).orders == []  # type: ignore[arg-type]
    assert classify_draft_orders({"entry": []}, [None, 5], terminology).orders == []  # type: ignore[list-item]


# --- drugs named by medicationReference ---------------------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SORAFENIB_MEDICATION = {
    "resourceType": "Medication",
    "id": "med-sora",
    "code": {"coding": [{"system": RXNORM, "code": "597747", "display": "sorafenib 200 MG Oral Tablet"}]},
}
AMOXICILLIN_MEDICATION = {
    "resourceType": "Medication",
    "id": "med-sora",
    "code": {"coding": [{"system": RXNORM, "code": "617993", "display": "Amoxicillin 120 MG/ML Oral Suspension"}]},
}


def draft_bundle(reference: dict, *extra: dict) -> dict:
    order = {
        "resourceType": "MedicationRequest",
        "id": "draft-ref",
        "status": "draft",
        "intent": "order",
        "medicationReference": reference,
        "authoredOn": "2026-11-20",
    }
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in (order, *extra)]}


def test_reference_resolved_from_known_medications(terminology):
    bundle = draft_bundle({"reference": "Medication/med-sora"})
    (order,) = classify_draft_orders(bundle, None, terminology, {"Medication/med-sora": SORAFENIB_MEDICATION}).orders
    assert (order.drug_class, order.identified_by, order.unresolved_reference) == (DrugClass.SORAFENIB, "code", None)
    assert order.coding.code == "597747"


def test_reference_unresolved_without_known_medications(terminology):
    summary = classify_draft_orders(draft_bundle({"reference": "Medication/med-sora"}), None, terminology)
    (order,) = summary.orders
    assert order.drug_class is DrugClass.IRRELEVANT and order.identified_by is None
    assert summary.unresolved_references == ["Medication/med-sora"]


def test_the_draft_bundle_medication_beats_the_known_ones(terminology):
    bundle = draft_bundle({"reference": "Medication/med-sora"}, SORAFENIB_MEDICATION)
    (order,) = classify_draft_orders(bundle, None, terminology, {"Medication/med-sora": AMOXICILLIN_MEDICATION}).orders
    assert order.drug_class is DrugClass.SORAFENIB and order.unresolved_reference is None


def test_the_reference_display_is_the_last_resort(terminology):
    reference = {"reference": "Medication/med-x", "display": "sorafenib 200 MG Oral Tablet"}
    (order,) = classify_draft_orders(draft_bundle(reference), None, terminology).orders
    assert (order.drug, order.identified_by, order.unresolved_reference) == (
        "sorafenib",
        "reference_display",
        "Medication/med-x",
    )
    assert order.coding.display == "sorafenib 200 MG Oral Tablet" and order.coding.code is None
    # A Medication that is found names the drug, whatever the display says.
    (order,) = classify_draft_orders(
        draft_bundle(reference), None, terminology, {"Medication/med-x": AMOXICILLIN_MEDICATION}
    ).orders
    assert order.drug_class is DrugClass.IRRELEVANT and order.unresolved_reference is None


def test_identified_by_code_or_text(fixture, terminology):
    summary = classify_draft_orders(fixture("draft_orders.json"), None, terminology)
    assert {o.resource_id: o.identified_by for o in summary.orders} == {
        "draft-sora": "code",
        "draft-lenva": "code",
        "draft-pembro": "code",
        "draft-amox": None,
    }
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "x",
                    "medicationCodeableConcept": {"text": "Nexavar 200 mg"},
                }
            }
        ],
    }
    assert classify_draft_orders(bundle, None, terminology).orders[0].identified_by == "text"


def test_medication_concept_falls_back_to_the_reference_display():
    request = {
        "resourceType": "MedicationRequest",
        "medicationReference": {"reference": "Medication/m", "display": "sorafenib"},
    }
    assert medication_concept(request, {}) == {"text": "sorafenib"}
    assert medication_concept(request, {"Medication/m": SORAFENIB_MEDICATION}) == SORAFENIB_MEDICATION["code"]
    assert medication_concept({"medicationReference": {"reference": "#gone", "display": "sorafenib"}}, {}) == {
        "text": "sorafenib"
    }
    assert medication_concept({"medicationReference": {"reference": "Medication/m"}}, {}) is None
    assert medication_concept({"medicationReference": {"display": "  "}}, {}) is None


def test_history_references_that_need_reading():
    resources = [
        {"resourceType": "MedicationStatement", "medicationReference": {"reference": "Medication/a"}},
        {"resourceType": "MedicationRequest", "medicationReference": {"reference": "Medication/a"}},
        {"resourceType": "MedicationAdministration", "medicationReference": {"reference": "Medication/b"}},
        {"resourceType": "MedicationRequest", "medicationReference": {"reference": "Medication/known"}},
        {"resourceType": "MedicationRequest", "medicationReference": {"reference": "#contained"}},
        {"resourceType": "Observation", "medicationReference": {"reference": "Medication/c"}},
    ]
    assert medication_references(resources, {"Medication/known": SORAFENIB_MEDICATION}) == [
        "Medication/a",
        "Medication/b",
    ]
