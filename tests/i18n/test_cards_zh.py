"""Issue 28: cards in Simplified Chinese, over HTTP against the real service.

Every vignette is sent twice, once to a service whose default language is English and once to
one whose default is zh-CN: the Chinese cards must pass the same CDS Hooks checks as the English
ones (schema, summary under 140 characters, the study's DOI) and carry the same structure (uuids,
indicators, suggestions and their FHIR resources), with Chinese wording. The clinician's own
language (Practitioner.communication) wins over the default, prefetched or fetched.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from fhir_factory import SORAFENIB, full_prefetch, hcc_hbv_conditions, hook_request, medication_request
from fhir_stub import FhirStub
from hook_calls import check_response
from pydantic import ValidationError

from cards.common import SUMMARY_LIMIT
from cards.schema import CdsResponse
from cds_service.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vignettes"))  # make_bundles, as its tests do
from test_vignettes import SERVICES, VIGNETTES, hook_body  # type: ignore[import-not-found]

CJK = re.compile(r"[\u4e00-\u9fff]")


def post(server, body: dict, service: str) -> dict:
    response = requests.post(f"{server.url}/cds-services/{service}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    payload = response.json()
    check_response(payload)  # schema, summary < 140, DOI in detail and links
    CdsResponse.model_validate(payload)  # our own invariants (cards/schema.py)
    return payload


def shape(card: dict) -> dict:
    """What must not change with the language: identity, severity, actions and what they create."""
    return {
        "uuid": card["uuid"],
        "indicator": card["indicator"],
        "topic": card["source"]["topic"]["code"],
        "selectionBehavior": card.get("selectionBehavior"),
        "overrideReasons": [r["code"] for r in card.get("overrideReasons", [])],
        "links": [(link["type"], urlsplit(link["url"]).path) for link in card["links"]],  # two servers, two ports
        "actions": [
            [
                (
                    a["type"],
                    a.get("resourceId"),
                    (a.get("resource") or {}).get("medicationCodeableConcept", {}).get("coding"),
                )
                for a in s["actions"]
            ]
            for s in card.get("suggestions", [])
        ],
    }


@pytest.fixture
def servers(live_server):
    return {locale: live_server(locale=locale) for locale in ("en", "zh_CN")}


def test_every_vignette_in_chinese_keeps_the_cards_and_their_limits(servers):
    """One pair of servers for all vignettes; every vignette is checked before the test fails."""
    failures = {}
    for vignette in VIGNETTES:
        try:
            check_vignette(servers, vignette)
        except AssertionError as exc:
            failures[vignette["id"]] = str(exc)[:300]
    assert not failures, failures


def check_vignette(servers, vignette: dict) -> None:
    body = hook_body(vignette)
    service = SERVICES[vignette.get("hook", "order-select")]
    english = post(servers["en"], copy.deepcopy(body), service)["cards"]
    chinese = post(servers["zh_CN"], copy.deepcopy(body), service)["cards"]
    assert [shape(c) for c in chinese] == [shape(c) for c in english]
    for card in chinese:
        assert len(card["summary"]) <= SUMMARY_LIMIT and not card["summary"].endswith("…"), card["summary"]
        assert CJK.search(card["summary"]) and CJK.search(card["detail"]) and CJK.search(card["source"]["label"])
        assert all(CJK.search(link["label"]) for link in card["links"])
        assert all(CJK.search(s["label"]) for s in card.get("suggestions", []))
        assert all(CJK.search(r["display"]) for r in card.get("overrideReasons", []))
        same = next(c for c in english if c["uuid"] == card["uuid"])
        assert card["detail"].count("|") == same["detail"].count("|")  # the same tables
    for card in english:
        assert not card["summary"].endswith("…"), card["summary"]


def practitioner(*languages: str, preferred: str | None = None) -> dict:
    """R4 shape (CodeableConcepts) unless ``preferred`` is given, then R5's {language, preferred}."""
    concepts: list[dict[str, Any]] = [{"coding": [{"system": "urn:ietf:bcp:47", "code": code}]} for code in languages]
    if preferred is not None:
        concepts = [
            {"language": c, "preferred": code == preferred} for c, code in zip(concepts, languages, strict=True)
        ]
    return {"resourceType": "Practitioner", "id": "dr-1", "communication": concepts}


def first_line_body(**kw) -> dict:
    vignette = next(v for v in VIGNETTES if v["id"] == "v01")
    body = hook_body(vignette)
    body.update(kw)
    return body


@pytest.mark.parametrize(
    ("user", "chinese"),
    [
        (practitioner("zh-CN"), True),
        (practitioner("zh"), True),
        (practitioner("fr", "zh-Hans"), True),  # the first language we ship
        (practitioner("en-GB", "zh-CN", preferred="zh-CN"), True),  # R5: the preferred one first
        (practitioner("zh-TW"), False),  # Traditional Chinese is not shipped: the default
        ({"resourceType": "Practitioner", "id": "dr-1"}, False),
        (None, False),  # the EHR had no Practitioner to give
    ],
)
def test_the_users_practitioner_language_wins_over_the_default(servers, user, chinese):
    body = first_line_body()
    body["prefetch"]["user"] = user
    (card,) = post(servers["en"], body, "hcc-systemic-therapy-select")["cards"]
    assert bool(CJK.search(card["summary"])) is chinese, card["summary"]
    assert "user" not in card["detail"]  # a language preference is no missing clinical data


def test_the_practitioner_is_fetched_when_not_prefetched(servers):
    with FhirStub(resources={"Practitioner/dr-1": practitioner("zh-CN")}) as fhir:
        body = first_line_body(fhirServer=fhir.url)
        del body["prefetch"]["user"]
        (card,) = post(servers["en"], body, "hcc-systemic-therapy-select")["cards"]
        assert [r.path for r in fhir.seen()] == ["Practitioner/dr-1"]  # the record came prefetched
    assert CJK.search(card["summary"]), card["summary"]


def test_a_user_who_is_not_a_practitioner_is_never_fetched(servers):
    with FhirStub() as fhir:
        body = first_line_body(fhirServer=fhir.url)
        body["context"]["userId"] = "PractitionerRole/role-1"
        del body["prefetch"]["user"]
        (card,) = post(servers["zh_CN"], body, "hcc-systemic-therapy-select")["cards"]
        assert fhir.seen() == []
    assert CJK.search(card["summary"])  # the deployment's default


def test_discovery_announces_the_user_template():
    from cds_service.services import USER_TEMPLATE

    assert USER_TEMPLATE.query == "Practitioner/{{userPractitionerId}}" and not USER_TEMPLATE.required


@pytest.mark.parametrize("value", ["fr", "zh-TW", "chinese", ""])
def test_an_unshipped_default_language_is_a_configuration_error(value):
    with pytest.raises(ValidationError, match="unsupported locale"):
        Settings(locale=value)


def test_a_sorafenib_order_without_markers_reads_in_chinese(servers):
    """The missing-data card: its reasons (MissingReason) are worded too."""
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-sorafenib")
    body = hook_request("order-select", [draft], prefetch=full_prefetch(hcc_hbv_conditions()))
    (card,) = post(servers["zh_CN"], body, "hcc-systemic-therapy-select")["cards"]
    assert card["summary"].startswith("未估计索拉非尼耐药风险"), card["summary"]
    assert "not found" not in card["detail"] and "未找到" in card["detail"]
