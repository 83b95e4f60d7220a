"""Issue 6: both clinical scenarios, end to end over HTTP against the real service.

Each test builds a realistic FHIR record, calls the hook as an EHR would and checks what the
clinician would read: indicator, numbers, reasons, suggestions (valid FHIR R4), links and DOI.
"""

from __future__ import annotations

import json

import pytest
import requests
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir_factory import (
    AMOXICILLIN,
    LENVATINIB,
    PEMBROLIZUMAB,
    SORAFENIB,
    afp,
    alt,
    condition,
    endoscopy,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    lab,
    medication_request,
    progression,
)
from hook_calls import post_hook

SELECT = "hcc-systemic-therapy-select"
SIGN = "hcc-systemic-therapy-sign"
ORDER_DATE = "2026-11-20"


def call(server, record, drafts, *, hook="order-select", service=SELECT, **kw) -> dict:
    return post_hook(server, hook_request(hook, drafts, prefetch=full_prefetch(record), **kw), service)


def sorafenib_draft() -> dict:
    return medication_request(SORAFENIB, ORDER_DATE, status="draft", rid="draft-sorafenib")


def first_line_record(afp_value=1250.0, alt_value=65.0, **afp_kw) -> list[dict]:
    """A patient both alternatives can be offered to: Child-Pugh A, an endoscopy 2 months ago."""
    return [
        afp(afp_value, "2026-11-10", **afp_kw),
        alt(alt_value, "2026-11-12"),
        *hcc_hbv_conditions(),
        child_pugh("A"),
        endoscopy("2026-09-15"),
    ]


def child_pugh(klass: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"child-pugh-{klass}",
        "status": "final",
        "code": {"text": "Child-Pugh classification"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-12",
        "valueString": f"Child-Pugh {klass}",
    }


def percent_in(text: str) -> int:
    """The estimate in 'Estimated primary sorafenib resistance risk 58% (95% CI ...'."""
    return int(text.split("risk ", 1)[1].split("%", 1)[0].strip())


def created_resources(suggestion: dict) -> list[dict]:
    return [a["resource"] for a in suggestion["actions"] if a["type"] == "create"]


# ----------------------------------------------------------------------------- scenario A


def test_both_markers_high_warns_and_offers_valid_alternatives(server):
    payload = call(server, first_line_record(), [sorafenib_draft()])
    (card,) = payload["cards"]
    assert card["indicator"] == "warning"
    assert "primary sorafenib resistance" in card["summary"] and "38.9% cohort" in card["summary"]
    assert "1250 ng/mL" in card["detail"] and "65 U/L" in card["detail"]  # the values as received
    assert "2026-11-10" in card["detail"] and "LOINC 1834-1" in card["detail"]
    assert "modest" in card["detail"] and "AUC" in card["detail"]
    labels = [s["label"] for s in card["suggestions"]]
    assert labels == ["Replace sorafenib with lenvatinib", "Replace sorafenib with atezolizumab + bevacizumab"]
    assert card["selectionBehavior"] == "at-most-one"
    for suggestion in card["suggestions"]:
        assert not suggestion.get("isRecommended"), "the evidence does not support recommending one"
        deletes = [a for a in suggestion["actions"] if a["type"] == "delete"]
        assert [a["resourceId"] for a in deletes] == ["MedicationRequest/draft-sorafenib"]
        for resource in created_resources(suggestion):
            order = MedicationRequest.model_validate(resource)
            assert (order.status, order.intent) == ("draft", "order")
            assert order.subject.reference == "Patient/p1"
    lenvatinib = created_resources(card["suggestions"][0])[0]
    assert lenvatinib["medicationCodeableConcept"]["coding"][0] == {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "1603296",
        "display": "lenvatinib",
    }
    assert len(created_resources(card["suggestions"][1])) == 2
    assert {r["code"] for r in card["overrideReasons"]} >= {
        "patient-preference",
        "tumour-board",
        "contraindication-alternatives",
    }
    smart = [link for link in card["links"] if link["type"] == "smart"]
    assert smart and json.loads(smart[0]["appContext"])["scenario"] == "first_line"
    assert card["source"]["url"] == f"{server.url}/model-card"  # as the EHR reached the service
    assert requests.get(card["source"]["url"], timeout=5).status_code == 200
    assert requests.get(card["source"]["icon"], timeout=5).headers["Content-Type"] == "image/png"


def test_one_marker_high_is_info_without_suggestions_and_lower_risk(server):
    both = call(server, first_line_record(), [sorafenib_draft()])["cards"][0]
    one = call(server, first_line_record(alt_value=30), [sorafenib_draft()])["cards"][0]
    assert one["indicator"] == "info"
    assert "suggestions" not in one
    assert "AFP high" in one["summary"]
    assert percent_in(one["summary"]) < percent_in(both["summary"])


def test_no_marker_high_gives_a_quiet_card_or_none(server, live_server):
    record = first_line_record(afp_value=12, alt_value=25)
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert card["indicator"] == "info" and "not raised" in card["summary"]
    assert percent_in(card["summary"]) < 39
    silent = live_server(quiet_low_risk_card=False)
    assert call(silent, record, [sorafenib_draft()])["cards"] == []


def test_alternatives_threshold_is_configurable(live_server):
    eager = live_server(alternatives_min_high_markers=1)
    (card,) = call(eager, first_line_record(alt_value=30), [sorafenib_draft()])["cards"]
    assert card["indicator"] == "info" and len(card["suggestions"]) == 2


def test_missing_alt_says_what_is_missing_and_gives_no_score(server):
    record = [afp(1250, "2026-11-10"), *hcc_hbv_conditions()]
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert card["indicator"] == "info"
    assert "needs ALT" in card["summary"] and "30 days" in card["summary"]
    assert "%" not in card["summary"]
    assert "not found" in card["detail"]


def test_stale_afp_is_reported_with_its_date(server):
    record = [afp(1250, "2026-10-01"), alt(65, "2026-11-12"), *hcc_hbv_conditions()]
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert "needs AFP" in card["summary"]
    assert "stale" in card["detail"] and "2026-10-01" in card["detail"]


def test_afp_in_international_units_is_converted(server):
    # 400 IU/mL × 1.21 ng/IU = 484 ng/mL: above the 400 ng/mL threshold although the number is not.
    record = first_line_record(afp_value=400, unit="IU/mL", ucum="[IU]/mL")
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert card["indicator"] == "warning"
    assert "400 IU/mL" in card["detail"]


def test_comparator_above_range_counts_as_high(server):
    record = first_line_record(afp_value=60500, comparator=">")
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert card["indicator"] == "warning" and ">60500" in card["detail"]


@pytest.mark.parametrize(
    "record, reason",
    [
        (
            [afp(1250, "2026-11-10"), alt(65, "2026-11-12"), *hcc_hbv_conditions(), child_pugh("C")],
            "Child-Pugh class C",
        ),
        (
            [afp(1250, "2026-11-10"), alt(65, "2026-11-12"), condition("B18.1", "Chronic hepatitis B")],
            "no HCC diagnosis",
        ),
    ],
)
def test_out_of_scope_patients_get_no_estimate(server, record, reason):
    (card,) = call(server, record, [sorafenib_draft()])["cards"]
    assert card["indicator"] == "info"
    assert "does not apply" in card["summary"] and reason in card["summary"]
    assert "suggestions" not in card and "No estimate is shown" in card["detail"]


def test_irrelevant_order_gets_no_cards(server):
    amoxicillin = medication_request(AMOXICILLIN, ORDER_DATE, status="draft", rid="draft-amox")
    assert call(server, first_line_record(), [amoxicillin])["cards"] == []


def test_only_selected_orders_trigger(server):
    amoxicillin = medication_request(AMOXICILLIN, ORDER_DATE, status="draft", rid="draft-amox")
    payload = call(
        server, first_line_record(), [amoxicillin, sorafenib_draft()], selections=["MedicationRequest/draft-amox"]
    )
    assert payload["cards"] == []


def test_order_sign_gives_the_same_card(server):
    payload = call(server, first_line_record(), [sorafenib_draft()], hook="order-sign", service=SIGN)
    assert payload["cards"][0]["indicator"] == "warning"


def test_missing_prefetch_is_named_in_the_card(server):
    body = hook_request("order-select", [sorafenib_draft()], prefetch=full_prefetch(first_line_record()))
    body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    response = requests.post(f"{server.url}/cds-services/{SELECT}", json=body, timeout=10).json()
    (card,) = response["cards"]
    assert "`conditions`" in card["detail"] and "OperationOutcome" in card["detail"]


# ----------------------------------------------------------------------------- scenario B


def second_line_record(progression_date: str | None, *, extra: list[dict] | None = None) -> list[dict]:
    record = [medication_request(SORAFENIB, "2026-03-01", status="completed"), *hcc_hbv_conditions(), child_pugh("A")]
    if progression_date:
        record.append(progression(progression_date))
    return record + (extra or [])


def lenvatinib_draft() -> dict:
    return medication_request(LENVATINIB, ORDER_DATE, status="draft", rid="draft-lenvatinib")


def test_primary_resistance_card_shows_dates_estimates_and_pd1_suggestions(server):
    (card,) = call(server, second_line_record("2026-05-01"), [lenvatinib_draft()])["cards"]
    assert card["summary"].startswith("Primary sorafenib resistance")
    assert "2026-03-01" in card["detail"] and "2026-05-01" in card["detail"]
    assert "| Median PFS |" in card["detail"] and "| OS at 6 / 12 / 24 mo |" in card["detail"]
    assert "primary-resistance subgroup, n = 86" in card["detail"]
    assert "PFS 4.5 vs 8 months; OS 8.5 vs 16 months" in card["detail"]
    labels = [s["label"] for s in card["suggestions"]]
    assert labels and all(label.startswith("Add a PD-1 inhibitor") for label in labels)
    assert "Add a PD-1 inhibitor: pembrolizumab" in labels
    for suggestion in card["suggestions"]:
        (resource,) = created_resources(suggestion)
        MedicationRequest.model_validate(resource)
        assert [a["type"] for a in suggestion["actions"]] == ["create"]
    # The combination's median OS beats TKI alone in the estimate, as in the study.
    tki, combo = card["summary"].split("median OS ")[1].split(" mo")[0].split(" vs ")[::-1]
    assert float(combo) > float(tki)


def test_secondary_resistance_and_its_better_prognosis(server):
    primary = call(server, second_line_record("2026-05-01"), [lenvatinib_draft()])["cards"][0]
    secondary = call(server, second_line_record("2026-08-01"), [lenvatinib_draft()])["cards"][0]
    assert secondary["summary"].startswith("Secondary sorafenib resistance")
    assert "secondary-resistance subgroup, n = 106" in secondary["detail"]

    def combo_os(card):
        return float(card["summary"].split("median OS ")[1].split(" vs ")[0])

    assert combo_os(secondary) > combo_os(primary)


def test_history_without_progression_gets_no_estimate_and_says_what_to_check(server):
    (card,) = call(server, second_line_record(None), [lenvatinib_draft()])["cards"]
    assert card["summary"].startswith("Second-line survival estimate does not apply: no radiological progression")
    assert "check the latest imaging" in card["detail"] and "No estimate is shown" in card["detail"]
    assert "suggestions" not in card


def test_pd1_already_in_draft_orders_gives_estimate_without_suggestion(server):
    pd1 = medication_request(PEMBROLIZUMAB, ORDER_DATE, status="draft", rid="draft-pembro")
    payload = call(server, second_line_record("2026-05-01"), [lenvatinib_draft(), pd1], hook="order-sign", service=SIGN)
    (card,) = payload["cards"]
    assert "suggestions" not in card
    assert "already among the draft orders" in card["detail"] and "| Median OS |" in card["detail"]


def test_tki_without_prior_sorafenib_is_outside_the_evidence(server):
    record = [afp(1250, "2026-11-10"), alt(65, "2026-11-12"), *hcc_hbv_conditions()]
    assert call(server, record, [lenvatinib_draft()])["cards"] == []


def test_sorafenib_reuse_after_progression_is_second_line(server):
    draft = medication_request(SORAFENIB, ORDER_DATE, status="draft", rid="draft-sorafenib-2")
    (card,) = call(server, second_line_record("2026-05-01"), [draft])["cards"]
    assert card["summary"].startswith("Primary sorafenib resistance")


def test_tumour_burden_is_used_when_known(server):
    big = lab("33728-7", 7.5, "cm", "2026-11-01")
    big["category"] = []  # imaging, not a lab
    (card,) = call(server, second_line_record("2026-05-01", extra=[big]), [lenvatinib_draft()])["cards"]
    assert "tumour > 5 cm: yes" in card["detail"]


def test_card_uuids_are_stable_per_hook_call_and_feedback_refers_to_them(server):
    body = hook_request("order-select", [sorafenib_draft()], prefetch=full_prefetch(first_line_record()))
    url = f"{server.url}/cds-services/{SELECT}"
    first = requests.post(url, json=body, timeout=10).json()["cards"][0]
    again = requests.post(url, json=body, timeout=10).json()["cards"][0]
    assert first["uuid"] == again["uuid"]
    assert [s["uuid"] for s in first["suggestions"]] == [s["uuid"] for s in again["suggestions"]]
    feedback = {
        "feedback": [
            {
                "card": first["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-20T10:00:00Z",
                "overrideReason": {"reason": first["overrideReasons"][0]},
            }
        ]
    }
    assert requests.post(f"{url}/feedback", json=feedback, timeout=10).status_code == 200
    # The audit rows are queued once each answer is sent, and written by the writer thread.
    server.runtime.pipeline.audit_writer.flush()
    audits = [a for a in server.runtime.store.audit.records() if str(a.hook_instance) == body["hookInstance"]]
    assert [a.card_uuids for a in audits] == [[first["uuid"]], [first["uuid"]]]
    assert sum(rate.overridden for rate in server.runtime.store.reports.audit_report().card_feedback) >= 1
