"""What the metrics and logs say about refused tokens, the fast path, feedback and a database outage.

In-process server: the metrics are this process's own registry, so each test compares a counter
before and after what it does.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import time
from pathlib import Path

import pytest
import requests
from cds_testkit import SELECT_SERVICE, bearer, claims, issue_cards, sign
from fhir_factory import AMOXICILLIN, hook_request, medication_request

from cds_service import auth
from cds_service.observability import AUTH_FAILURE_REASONS, JsonFormatter, auth_failure_reason
from cds_service.store import StoreUnavailable

TIMEOUT = 10


def metric(server, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{server.url}/metrics", timeout=TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def test_every_refusal_auth_makes_has_a_reason():
    """Each ``InvalidToken`` message in cds_service/auth.py maps to a reason other than "other"."""
    messages = []
    for node in ast.walk(ast.parse(Path(auth.__file__).read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "InvalidToken" and node.args:
            message = node.args[0]
            parts = message.values if isinstance(message, ast.JoinedStr) else [message]
            messages.append("".join(p.value if isinstance(p, ast.Constant) else "x" for p in parts))
    assert len(messages) >= 20
    assert {m: auth_failure_reason(m) for m in messages if auth_failure_reason(m) == "other"} == {}
    assert {auth_failure_reason(m) for m in messages} == {reason for reason, _ in AUTH_FAILURE_REASONS}


def test_refused_tokens_are_counted_by_reason_and_logged_as_events(live_server, jwks, json_log):
    server = live_server(**jwks.settings())
    url = f"{server.url}/cds-services/{SELECT_SERVICE}"
    expired = sign(jwks.ec, claims(url, exp=int(time.time()) - 600, iat=int(time.time()) - 900))
    before = {
        reason: metric(server, "cds_auth_failures_total", reason=reason) for reason in ("missing_token", "expired")
    }

    assert requests.post(url, json={}, timeout=TIMEOUT).status_code == 401
    assert requests.post(url, json={}, headers=bearer(expired), timeout=TIMEOUT).status_code == 401

    for reason in ("missing_token", "expired"):
        assert metric(server, "cds_auth_failures_total", reason=reason) == before[reason] + 1
    assert metric(server, "cds_http_requests_total", endpoint="/cds-services/<service_id>", status="401") >= 2
    events = [e for e in json_log() if e.get("event") == "auth_failure"]
    assert [(e["level"], e["reason"]) for e in events] == [("WARNING", "missing_token"), ("WARNING", "expired")]
    assert expired.split(".")[1] not in json.dumps(json_log())


def test_the_fast_path_and_feedback_results_are_counted(server):
    def fast_path() -> float:
        return metric(server, "cds_assessments_total", service_id=SELECT_SERVICE, outcome="fast_path")

    def results() -> dict[str, float]:
        return {
            result: metric(server, "cds_feedback_entries_total", service_id=SELECT_SERVICE, result=result)
            for result in ("stored", "duplicate", "refused", "conflict")
        }

    before, results_before = fast_path(), results()
    irrelevant = hook_request("order-select", [medication_request(AMOXICILLIN, "2026-11-20", status="draft")])
    answer = requests.post(f"{server.url}/cds-services/{SELECT_SERVICE}", json=irrelevant, timeout=TIMEOUT)
    assert answer.json() == {"cards": []}
    assert fast_path() == before + 1

    entry = {"card": "card-m1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    accepted = {**entry, "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}]}
    issue_cards(server.runtime.store, SELECT_SERVICE, [entry, accepted])
    feedback = f"{server.url}/cds-services/{SELECT_SERVICE}/feedback"
    unknown = {**entry, "card": "card-never-issued"}
    for body in ([entry], [entry], [accepted], [unknown]):
        requests.post(feedback, json={"feedback": body}, timeout=TIMEOUT)
    after = results()
    # stored; the same again (a retry); the card accepted after being overridden; a card never issued
    assert {k: after[k] - results_before[k] for k in after} == {
        "stored": 1,
        "duplicate": 1,
        "refused": 1,
        "conflict": 1,
    }


def test_a_503_for_the_database_is_logged_as_a_warning_and_the_database_shown_down(server, monkeypatch, json_log):
    def unavailable(*_args, **_kwargs):
        raise StoreUnavailable("OperationalError")

    monkeypatch.setattr(server.runtime.store.feedback, "add", unavailable)
    monkeypatch.setattr(server.runtime.store.database, "ping", lambda: False)
    entry = {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    answer = requests.post(
        f"{server.url}/cds-services/{SELECT_SERVICE}/feedback", json={"feedback": [entry]}, timeout=TIMEOUT
    )
    assert answer.status_code == 503
    warnings = [e for e in json_log() if e["level"] == "WARNING" and e.get("event") == "database_unavailable"]
    assert [(w["error"], w["endpoint"]) for w in warnings] == [
        ("store_unavailable", "/cds-services/<service_id>/feedback")
    ]
    assert metric(server, "cds_database_up") == 0
    monkeypatch.undo()
    assert metric(server, "cds_database_up") == 1  # each scrape asks the database
