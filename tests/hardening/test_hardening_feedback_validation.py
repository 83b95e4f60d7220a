"""Feedback is not accepted blindly (issue 22, item 7), over real HTTP: bodies are validated as
CDS Hooks 2.0 §Feedback says, feedback is stored only for cards this service issued (and
suggestions they carried), a card is either accepted or overridden, and a replay is answered as
one. Every answer has the shape ``cds_service/openapi.yaml`` documents for it."""

from __future__ import annotations

import copy
import threading
import time
import uuid

import pytest
import requests
from hardening_kit import SELECT, SIGN, sorafenib_call
from issued_cards import record_issued_cards
from jsonschema import Draft202012Validator

from cds_service.openapi import description

AT = "2026-11-20T10:00:00Z"
LATER = "2026-11-20T10:05:00Z"


def issue(server, *cards: str, service_id: str = SELECT, suggestions: tuple[str, ...] = ("sugg-1",)) -> None:
    """Audit an assessment by ``service_id`` that issued ``cards``, each with ``suggestions``."""
    record_issued_cards(server.runtime.store, service_id, dict.fromkeys(cards, suggestions))


def accepted(card: str, at: str = AT, suggestion: str = "sugg-1") -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}], "outcomeTimestamp": at}


def overridden(card: str, at: str = AT, comment: str = "discussed at tumour board") -> dict:
    return {"card": card, "outcome": "overridden", "overrideReason": {"userComment": comment}, "outcomeTimestamp": at}


def post(server, *entries: dict, service_id: str = SELECT) -> requests.Response:
    response = requests.post(
        f"{server.url}/cds-services/{service_id}/feedback", json={"feedback": list(entries)}, timeout=15
    )
    documented(response)
    return response


def documented(response: requests.Response) -> None:
    """The body matches the schema openapi.yaml gives the feedback endpoint for this status."""
    spec = description()
    answer = spec["paths"]["/cds-services/{service_id}/feedback"]["post"]["responses"][str(response.status_code)]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = {**answer["content"]["application/json"]["schema"], "components": spec["components"]}
    Draft202012Validator(schema).validate(response.json())


@pytest.fixture
def server(live_server):
    server = live_server()
    issue(server, "card-1", "card-2")
    return server


def stored(server) -> list[tuple[str, str]]:
    return [(row["card_uuid"], row["outcome"]) for row in server.runtime.store.feedback.entries()]


# -- the body, as CDS Hooks 2.0 §Feedback says ------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        # OverrideReason: reason CONDITIONAL, userComment OPTIONAL, and no element may be empty.
        (overridden("card-1") | {"overrideReason": {}}, "feedback.0.overrideReason"),
        (overridden("card-1") | {"overrideReason": None}, "feedback.0.overrideReason"),  # SHALL NOT be null
        (overridden("card-1", comment=""), "feedback.0.overrideReason.userComment"),
        # Coding: code and system REQUIRED.
        (
            overridden("card-1") | {"overrideReason": {"reason": {"code": "x"}}},
            "feedback.0.overrideReason.reason.system",
        ),
        (
            overridden("card-1") | {"overrideReason": {"reason": {"system": "urn:x", "code": ""}}},
            "feedback.0.overrideReason.reason.code",
        ),
        # An entry carrying the other outcome's field contradicts itself.
        (accepted("card-1") | {"overrideReason": {"userComment": "no"}}, "feedback.0.overrideReason"),
        (overridden("card-1") | {"acceptedSuggestions": [{"id": "sugg-1"}]}, "feedback.0.acceptedSuggestions"),
        # acceptedSuggestions: "Required for accepted outcomes", and not empty.
        (accepted("card-1") | {"acceptedSuggestions": []}, "feedback.0.acceptedSuggestions"),
        ({k: v for k, v in accepted("card-1").items() if k != "acceptedSuggestions"}, "feedback.0"),
        # extension: "MUST be a pre-coordinated JSON object".
        (overridden("card-1") | {"extension": "org.example.flag"}, "feedback.0.extension"),
        (overridden("card-1") | {"extension": {}}, "feedback.0.extension"),
        # outcomeTimestamp: RFC 3339 §5.6 date-time, not what a lenient parser makes of other text.
        (overridden("card-1", at="1763632800"), "feedback.0.outcomeTimestamp"),  # Unix time as text
        (overridden("card-1", at="2026-11-20T10:00Z"), "feedback.0.outcomeTimestamp"),  # no seconds
        (overridden("card-1", at="2026-11-20T10:00:00+0100"), "feedback.0.outcomeTimestamp"),  # ISO 8601 basic offset
    ],
)
def test_an_entry_the_spec_does_not_allow_is_400_naming_the_field_and_nothing_is_stored(server, entry, field):
    response = post(server, entry)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert stored(server) == []


@pytest.mark.parametrize(
    "override_reason",
    [
        {"userComment": "discussed at tumour board"},  # "instead of only leaving a userComment"
        {"reason": {"system": "urn:hcc-sorafenib-cds:override-reason", "code": "patient-preference"}},  # no display
        {"reason": {"system": "urn:x", "code": "y", "display": "Y"}, "userComment": "and why"},
    ],
)
def test_an_override_reason_with_a_reason_a_comment_or_both_is_stored(server, override_reason):
    response = post(server, overridden("card-1") | {"overrideReason": override_reason})
    assert response.status_code == 200, response.text
    assert stored(server) == [("card-1", "overridden")]


def test_unknown_fields_are_ignored_and_extensions_accepted(server):
    entry = overridden("card-1") | {"extension": {"org.example.ehr-session": "s-1"}, "org.example.note": None}
    response = post(server, entry)
    assert response.status_code == 200, response.text
    assert stored(server) == [("card-1", "overridden")]


# -- only cards this service issued -----------------------------------------------------------------


def test_feedback_on_a_card_never_issued_is_404_and_not_stored(server):
    response = post(server, overridden("never-issued"))
    assert response.status_code == 404, response.text
    body = response.json()
    assert (body["error"], body["stored"], body["refused"]) == ("feedback_refused", 0, 1)
    assert body["details"] == [{"field": "feedback.0.card", "problem": body["results"][0]["problem"]}]
    assert body["results"][0] | {"problem": ""} == {
        "card": "never-issued",
        "status": "refused",
        "error": "unknown_card",
        "problem": "",
    }
    assert stored(server) == []


def test_a_card_another_service_issued_is_unknown_to_this_one(server):
    issue(server, "sign-card", service_id=SIGN)
    assert post(server, overridden("sign-card")).status_code == 404
    assert post(server, overridden("sign-card"), service_id=SIGN).status_code == 200
    assert stored(server) == [("sign-card", "overridden")]


def test_a_mixed_batch_says_which_entries_were_stored_and_which_refused(server):
    batch = [overridden("card-1"), overridden("never-issued"), accepted("card-2")]
    response = post(server, *batch)
    assert response.status_code == 404, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["refused"]) == (2, 0, 1)
    assert [(r["card"], r["status"]) for r in body["results"]] == [
        ("card-1", "stored"),
        ("never-issued", "refused"),
        ("card-2", "stored"),
    ]
    assert [d["field"] for d in body["details"]] == ["feedback.1.card"]
    again = post(server, *batch).json()  # the client's retry: nothing stored twice, the refusal stands
    assert (again["stored"], again["duplicates"], again["refused"]) == (0, 2, 1)
    assert sorted(stored(server)) == [("card-1", "overridden"), ("card-2", "accepted")]


def test_a_suggestion_the_card_did_not_carry_is_404(server):
    response = post(server, accepted("card-1", suggestion="sugg-9"))
    assert response.status_code == 404, response.text
    assert response.json()["results"][0]["error"] == "unknown_suggestion"
    assert response.json()["details"][0]["field"] == "feedback.0.acceptedSuggestions"
    assert stored(server) == []


def test_feedback_sent_the_moment_the_cards_arrive_is_stored(live_server):
    """The audit row naming a card is written ~0.1 s after the card is answered, off the request
    path: feedback that arrives first waits for it instead of being refused as never issued."""
    server = live_server()
    hook = requests.post(f"{server.url}/cds-services/{SELECT}", json=sorafenib_call(), timeout=30)
    card = hook.json()["cards"][0]
    entry = accepted(card["uuid"], suggestion=card["suggestions"][0]["uuid"])
    response = post(server, entry)
    assert response.status_code == 200, response.text
    assert stored(server) == [(card["uuid"], "accepted")]


def test_feedback_waits_briefly_for_a_card_audited_by_another_worker(server):
    """Another worker or replica writes the audit rows of the cards it answered ~0.1 s later, and
    this worker cannot wait for them: a card unknown so far is looked for again for a moment."""
    audited_later = threading.Timer(0.15, issue, args=(server, "card-from-another-worker"))
    audited_later.start()
    started = time.monotonic()
    response = post(server, overridden("card-from-another-worker"))
    audited_later.join()
    assert response.status_code == 200, response.text
    never = post(server, overridden("never-issued"))
    assert never.status_code == 404 and time.monotonic() - started < 3


def test_the_suggestions_of_a_real_card_are_known(live_server):
    server = live_server()
    hook = requests.post(f"{server.url}/cds-services/{SELECT}", json=sorafenib_call(), timeout=30)
    card = hook.json()["cards"][0]
    server.runtime.pipeline.audit_writer.flush()
    other = str(uuid.uuid5(uuid.NAMESPACE_URL, "not-a-suggestion-of-this-card"))
    assert post(server, accepted(card["uuid"], suggestion=other)).status_code == 404
    assert post(server, accepted(card["uuid"], suggestion=card["suggestions"][0]["uuid"])).status_code == 200


# -- conflicts and replays ---------------------------------------------------------------------------


def test_an_exact_replay_is_200_with_nothing_stored_and_says_so(server):
    assert post(server, overridden("card-1")).json()["stored"] == 1
    again = post(server, overridden("card-1"))
    assert again.status_code == 200
    body = again.json()
    assert (body["stored"], body["duplicates"], body["refused"]) == (0, 1, 0)
    assert body["results"] == [{"card": "card-1", "status": "duplicate"}]
    assert stored(server) == [("card-1", "overridden")]
    report = server.runtime.store.reports.audit_report()
    assert [(r.shown, r.overridden) for r in report.card_feedback] == [(2, 1)]  # two cards issued, one overridden


@pytest.mark.parametrize(("first", "second"), [(accepted, overridden), (overridden, accepted)])
def test_a_card_accepted_and_overridden_is_409(server, first, second):
    assert post(server, first("card-1")).status_code == 200
    response = post(server, second("card-1", at=LATER))
    assert response.status_code == 409, response.text
    assert response.json()["results"][0]["error"] == "outcome_conflict"
    assert response.json()["details"][0]["field"] == "feedback.0.outcome"
    assert stored(server) == [("card-1", first("card-1")["outcome"])]


def test_the_same_entry_with_another_override_reason_is_409_not_a_duplicate(server):
    assert post(server, overridden("card-1", comment="patient preference")).status_code == 200
    response = post(server, overridden("card-1", comment="not applicable"))
    assert response.status_code == 409, response.text
    assert response.json()["results"][0]["error"] == "feedback_conflict"
    [row] = server.runtime.store.feedback.entries()
    assert row["user_comment"] == "patient preference"


def test_the_same_outcome_reported_again_later_is_stored(server):
    """CDS Hooks 2.0: "a CDS Service may receive feedback for the same card instance multiple
    times"; another suggestion accepted later is another interaction, and the rates count the
    card once."""
    issue(server, "card-3", suggestions=("sugg-1", "sugg-2"))
    assert post(server, accepted("card-3")).status_code == 200
    assert post(server, accepted("card-3", at=LATER, suggestion="sugg-2")).status_code == 200
    assert stored(server) == [("card-3", "accepted"), ("card-3", "accepted")]
    rates = server.runtime.store.reports.audit_report().card_feedback
    assert sum(r.accepted for r in rates) == 1


def test_a_conflict_in_a_mixed_batch_is_409_and_the_rest_is_stored(server):
    post(server, accepted("card-1"))
    response = post(server, overridden("card-1", at=LATER), overridden("never-issued"), overridden("card-2"))
    assert response.status_code == 409, response.text
    body = response.json()
    assert [r.get("error", r["status"]) for r in body["results"]] == ["outcome_conflict", "unknown_card", "stored"]
    assert sorted(stored(server)) == [("card-1", "accepted"), ("card-2", "overridden")]


def test_a_contradiction_within_one_post_is_refused(server):
    response = post(server, accepted("card-1"), copy.deepcopy(accepted("card-1")), overridden("card-1", at=LATER))
    assert response.status_code == 409, response.text
    assert [r.get("error", r["status"]) for r in response.json()["results"]] == [
        "stored",
        "duplicate",
        "outcome_conflict",
    ]
    assert stored(server) == [("card-1", "accepted")]
