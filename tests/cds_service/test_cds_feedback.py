"""CDS Hooks 2.0 feedback endpoint over real HTTP: spec examples on cards the service issued are
accepted, stored once, atomically, durably."""

from __future__ import annotations

import copy

import pytest
import requests
from cds_testkit import SELECT_SERVICE, SIGN_SERVICE, issue_cards, service_process, spec_example

from cds_service.store import Store

TIMEOUT = 10
EXAMPLES = ["feedback-suggestion-accepted.json", "feedback-overridden.json", "feedback-overridden-with-reason.json"]
EXAMPLE_ENTRIES = [spec_example(name)["feedback"][0] for name in EXAMPLES]


def post(url: str, service_id: str, body) -> requests.Response:
    return requests.post(f"{url}/cds-services/{service_id}/feedback", json=body, timeout=TIMEOUT)


@pytest.fixture
def server(server):
    """The service, having issued the spec examples' cards (with their suggestions) on both services."""
    for service_id in (SELECT_SERVICE, SIGN_SERVICE):
        issue_cards(server.runtime.store, service_id, EXAMPLE_ENTRIES)
    return server


@pytest.mark.parametrize("example", EXAMPLES)
def test_spec_feedback_example_is_accepted_and_stored_once(server, example):
    body = spec_example(example)
    response = post(server.url, SELECT_SERVICE, body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "refused": 0,
        "results": [{"card": body["feedback"][0]["card"], "status": "stored"}],
    }
    assert server.runtime.store.feedback.count() == 1
    [row] = server.runtime.store.feedback.entries()
    entry = body["feedback"][0]
    assert row["service_id"] == SELECT_SERVICE
    assert row["card_uuid"] == entry["card"]
    assert row["outcome"] == entry["outcome"]


def test_spec_feedback_fields_are_kept(server):
    post(server.url, SIGN_SERVICE, spec_example("feedback-suggestion-accepted.json"))
    post(server.url, SIGN_SERVICE, spec_example("feedback-overridden-with-reason.json"))
    accepted, overridden = server.runtime.store.feedback.entries()
    assert "e56e1945-20b3-4393-8503-a1a20fd73152" in accepted["accepted_suggestions"]
    assert overridden["override_code"] == "d7ecf885"
    assert overridden["override_system"] == "https://example.com/cds-hooks/override-reason-system"
    assert overridden["user_comment"] == "A comment entered by the clinician."


def test_a_batch_stores_each_entry_once(server):
    entries = [spec_example(name)["feedback"][0] for name in EXAMPLES]
    response = post(server.url, SELECT_SERVICE, {"feedback": entries})
    assert response.status_code == 200, response.text
    assert server.runtime.store.feedback.count() == len(entries)
    assert sorted(r["card_uuid"] for r in server.runtime.store.feedback.entries()) == sorted(e["card"] for e in entries)


def test_a_retried_post_is_not_counted_twice_and_says_so(server):
    body = spec_example("feedback-overridden.json")
    assert post(server.url, SELECT_SERVICE, body).json()["stored"] == 1
    again = post(server.url, SELECT_SERVICE, body)
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)
    assert again.json()["results"] == [{"card": body["feedback"][0]["card"], "status": "duplicate"}]
    assert server.runtime.store.feedback.count() == 1


@pytest.mark.parametrize(
    ("bad_entry", "field"),
    [
        ({"outcome": "maybe"}, "feedback.1.outcome"),
        ({"card": ""}, "feedback.1.card"),
        ({"outcomeTimestamp": "yesterday"}, "feedback.1.outcomeTimestamp"),
        ({"outcomeTimestamp": "2021-12-11T10:05:31"}, "feedback.1.outcomeTimestamp"),  # no offset: not UTC
        ({"outcomeTimestamp": 1639217131}, "feedback.1.outcomeTimestamp"),  # a number is not RFC 3339
        ({"outcome": "accepted", "acceptedSuggestions": None}, "feedback.1"),
    ],
)
def test_one_bad_entry_among_good_ones_is_400_and_nothing_is_stored(server, bad_entry, field):
    good = [spec_example(name)["feedback"][0] for name in EXAMPLES]
    bad = copy.deepcopy(good[1])
    bad.update(bad_entry)
    response = post(server.url, SELECT_SERVICE, {"feedback": [good[0], bad, good[2]]})
    assert response.status_code == 400, response.text
    fields = [d["field"] for d in response.json()["details"]]
    assert any(f.startswith(field) for f in fields), fields
    assert server.runtime.store.feedback.count() == 0


@pytest.mark.parametrize("body", [{}, {"feedback": []}, {"feedback": {}}, {"feedback": "x"}, [], {"card": "c"}])
def test_feedback_body_without_a_feedback_array_is_400(server, body):
    response = post(server.url, SELECT_SERVICE, body)
    assert response.status_code == 400, response.text
    assert server.runtime.store.feedback.count() == 0


def test_feedback_for_an_unknown_service_is_404_and_not_stored(server):
    response = post(server.url, "no-such-service", spec_example("feedback-overridden.json"))
    assert response.status_code == 404
    assert response.json()["error"]
    assert server.runtime.store.feedback.count() == 0


@pytest.mark.slow
def test_feedback_survives_a_restart_of_the_deployed_process(tmp_path):
    database_url = f"sqlite:///{tmp_path}/feedback.sqlite3"
    env = {"CDS_DATABASE_URL": database_url}
    issuer = Store(database_url)
    issue_cards(issuer, SELECT_SERVICE, EXAMPLE_ENTRIES)
    issuer.database.engine.dispose()
    with service_process(env) as url:
        for name in EXAMPLES:
            assert post(url, SELECT_SERVICE, spec_example(name)).status_code == 200
    with service_process(env) as url:
        # The restarted service is up on the same file; a retry of an old entry is still a no-op.
        retried = post(url, SELECT_SERVICE, spec_example(EXAMPLES[0]))
        assert retried.status_code == 200 and retried.json()["duplicates"] == 1
    store = Store(database_url)
    try:
        assert store.feedback.count() == len(EXAMPLES)
        assert sorted(r["card_uuid"] for r in store.feedback.entries()) == sorted(
            spec_example(name)["feedback"][0]["card"] for name in EXAMPLES
        )
    finally:
        store.database.engine.dispose()
