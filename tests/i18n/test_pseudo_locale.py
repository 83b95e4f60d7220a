"""Issue 28: no card text escapes the catalogue (pseudo-locale run over every vignette)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

from hcc_evidence import load_evidence

from .pseudo import escapes, pseudo_locale

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vignettes"))  # make_bundles, as its tests do
from test_vignettes import SERVICES, VIGNETTES, hook_body  # type: ignore[import-not-found]


def record_strings(value: object) -> set[str]:
    """Every string of the hook request: what the EHR wrote (displays, notes) is data."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(record_strings(item) for item in value))
    return set()


def visible_texts(card: dict) -> list[str]:
    texts = [card["summary"], card["detail"], card["source"]["label"], card["source"]["topic"]["display"]]
    texts += [link["label"] for link in card["links"]]
    texts += [reason["display"] for reason in card.get("overrideReasons", [])]
    for suggestion in card.get("suggestions", []):
        texts.append(suggestion["label"])
        for action in suggestion["actions"]:
            texts.append(action["description"])
            resource = action.get("resource") or {}
            texts += [note["text"] for note in resource.get("note", [])]
            texts.append(resource.get("medicationCodeableConcept", {}).get("text", "⟦⟧"))
    return texts


@pytest.fixture
def pseudo_server(monkeypatch, live_server):
    with pseudo_locale(monkeypatch):
        yield live_server()


def test_every_card_of_every_vignette_is_worded_through_the_catalogue(pseudo_server):
    found: dict[str, list[str]] = {}
    for vignette in VIGNETTES:
        body = hook_body(vignette)
        response = requests.post(
            f"{pseudo_server.url}/cds-services/{SERVICES[vignette.get('hook', 'order-select')]}", json=body, timeout=10
        )
        assert response.status_code == 200, response.text
        for card in response.json()["cards"]:
            summary = card["summary"]
            assert summary.startswith("⟦"), summary  # every summary is one catalogue message
            allowed = record_strings(body) | {load_evidence().source.citation}  # bibliographic, as published
            leaks = [e for text in visible_texts(card) for e in escapes(text, allowed)]
            if leaks:
                found[vignette["id"]] = leaks
    assert not found, sorted(found.items())


def test_the_pseudo_check_finds_a_string_outside_the_catalogue():
    """The check itself: an unmarked sentence is found, marked and data-only text is not."""
    assert escapes("⟦Estimated risk %(x)s⟧ plus an unmarked sentence") == ["plus an unmarked sentence"]
    assert escapes("⟦Study⟧ Observation/v01-afp (LOINC 1834-1) 1250 ng/mL 2026-11-10") == []
