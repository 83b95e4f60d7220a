"""The service as a real EHR would use it: discovery, prefetch from the FHIR server, the
order-select hook with a sorafenib draft order, a suggestion applied to the FHIR server as a
transaction, feedback, and the card's SMART link opened in the browser."""

from __future__ import annotations

import re

import pytest
import requests

from cds_service.smart import parse_app_context

from .conftest import FIRST_LINE
from .test_smart_app import _login

SERVICE = "hcc-systemic-therapy-select"
ORDER_DATE = "2025-06-02"
SORAFENIB_DRAFT = {
    "resourceType": "MedicationRequest",
    "id": "draft-sorafenib",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "495881", "display": "sorafenib"}],
        "text": "sorafenib 400 mg twice daily",
    },
    "authoredOn": ORDER_DATE,
    "dosageInstruction": [{"text": "400 mg orally twice daily"}],
}


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def first_line_call(stack):
    ehr = stack.ehr()
    return ehr, ehr.call_hook(SERVICE, FIRST_LINE, SORAFENIB_DRAFT)


def test_prefetch_is_filled_from_the_fhir_server(stack):
    ehr = stack.ehr()
    service = {s["id"]: s for s in ehr.discover()}[SERVICE]
    prefetch = ehr.prefetch(service, {"patientId": FIRST_LINE, "userId": ehr.user_id})
    assert set(prefetch) == set(service["prefetch"])
    assert prefetch["patient"]["id"] == FIRST_LINE
    codes = {coding["code"] for entry in prefetch["labs"]["entry"] for coding in entry["resource"]["code"]["coding"]}
    assert {"1834-1", "1742-6"} <= codes
    assert prefetch["medicationRequests"]["resourceType"] == "Bundle"


def test_order_select_answers_with_cards(first_line_call):
    _ehr, call = first_line_call
    assert call.status == 200, call.response
    assert isinstance(call.response["cards"], list)


def test_first_suggestion_is_applied_and_feedback_stored(stack, first_line_call):
    ehr, call = first_line_call
    picked = ehr.first_suggestion(call.response["cards"])
    assert picked is not None, "a high-risk first-line patient (AFP 1 250, ALT 65) gets a card with suggestions"
    card, suggestion = picked
    assert suggestion.get("uuid") and card.get("uuid")
    drafts = set(call.request["context"]["selections"])
    result, removed = ehr.apply_suggestion(suggestion, draft_orders=drafts)
    assert result is not None and result["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in result["entry"]]
    assert all(status.startswith(("200", "201", "204")) for status in statuses), statuses
    # What was created is now in the record, found by a patient search.
    stored_actions = [
        a for a in suggestion["actions"] if not (a["type"] == "delete" and set(_as_list(a["resourceId"])) <= drafts)
    ]
    assert len(stored_actions) == len(result["entry"])
    for action, entry in zip(stored_actions, result["entry"], strict=True):
        if action["type"] == "create":
            kind = action["resource"]["resourceType"]
            found = requests.get(f"{stack.fhir_base}/{kind}", params={"patient": FIRST_LINE}, timeout=10).json()
            created_id = entry["resource"]["id"] if "resource" in entry else entry["response"]["location"].split("/")[1]
            assert created_id in {e["resource"]["id"] for e in found.get("entry", [])}
    assert removed == ["MedicationRequest/draft-sorafenib"] or not removed
    feedback = ehr.feedback(SERVICE, card, suggestion)
    assert feedback.status_code == 200, feedback.text


def test_card_smart_link_opens_the_same_assessment(stack, first_line_call, page):
    ehr, call = first_line_call
    links = [link for card in call.response["cards"] for link in card.get("links", []) if link.get("type") == "smart"]
    assert links, "the card links to the SMART app"
    link = links[0]
    context = parse_app_context(link["appContext"])
    assert context.as_of.isoformat() == ORDER_DATE
    assert context.hook_instance == call.hook_instance
    page.goto(ehr.launch_url(link, FIRST_LINE))
    page.wait_for_url(re.compile(r"/authorize\?"))
    _login(page)
    page.wait_for_url(re.compile(r"/smart/app\?"))
    assert ORDER_DATE in page.locator(".context").first.inner_text()
    card_text = " ".join(card.get("detail", "") + card.get("summary", "") for card in call.response["cards"])
    shown = page.locator(
        "section", has=page.get_by_role("heading", name="Risk of primary sorafenib resistance")
    ).inner_text()
    percent = re.search(r"(\d+)%", shown)
    assert percent and f"{percent.group(1)}%" in card_text, "the app shows the risk the card showed"
