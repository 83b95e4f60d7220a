"""Coded searches behind a SMART launcher's FHIR proxy, which collapses every `//` in the URL it
forwards (cds_sandbox/collapsing_proxy.py). The EHR's prefetch, the service's fallback fetch and
the SMART app must still find the patient's AFP and ALT through it."""

from __future__ import annotations

import json
import re
import uuid

import requests

from cds_sandbox.ehr_simulator import EhrSimulator
from cds_service.services import search_token
from cds_service.smart import app_context

from .conftest import FIRST_LINE
from .test_ehr_simulator import SERVICE, SORAFENIB_DRAFT
from .test_smart_app import AS_OF, RXNORM, _ehr_launch

LOINC = "http://loinc.org"
AFP, ALT = "1834-1", "1742-6"


def _afp_values(base: str, code: str) -> list:
    bundle = requests.get(f"{base}/Observation?patient={FIRST_LINE}&code={code}", timeout=10).json()
    return [entry["resource"]["valueQuantity"]["value"] for entry in bundle.get("entry", [])]


def _codes(bundle: dict) -> set[str]:
    return {
        coding["code"]
        for entry in bundle.get("entry", [])
        for coding in entry["resource"].get("code", {}).get("coding", [])
    }


def _without_instance_ids(value):
    """Cards as a clinician reads them: the uuids and the appContext's hook instance differ per call."""
    if isinstance(value, list):
        return [_without_instance_ids(item) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {key: _without_instance_ids(item) for key, item in value.items() if key != "uuid"}
    if "appContext" in kept:
        kept["appContext"] = {k: v for k, v in json.loads(kept["appContext"]).items() if k != "hookInstance"}
    return kept


def test_the_proxy_breaks_raw_tokens_and_passes_encoded_ones(stack, collapsing_proxy):
    raw, encoded = f"{LOINC}|{AFP}", search_token(LOINC, AFP)
    assert _afp_values(stack.fhir_base, encoded) == [1250], "the e2e FHIR server decodes the encoded token"
    assert _afp_values(collapsing_proxy.base, raw) == [], "the reported failure: the system became http:/loinc.org"
    assert collapsing_proxy.seen[-1][1].endswith("code=http:/loinc.org%7C1834-1")
    assert _afp_values(collapsing_proxy.base, encoded) == [1250]


def test_ehr_prefetch_through_the_proxy_finds_the_labs(stack, collapsing_proxy):
    ehr = EhrSimulator(cds_base=stack.cds_url, fhir_base=collapsing_proxy.base)
    service = {s["id"]: s for s in ehr.discover()}[SERVICE]
    prefetch = ehr.prefetch(service, {"patientId": FIRST_LINE, "userId": ehr.user_id})
    assert {AFP, ALT} <= _codes(prefetch["labs"])


def test_fallback_fetch_through_the_proxy_gives_the_same_cards(stack, collapsing_proxy):
    direct = EhrSimulator(cds_base=stack.cds_url, fhir_base=stack.fhir_base)
    proxied = EhrSimulator(cds_base=stack.cds_url, fhir_base=collapsing_proxy.base)
    expected = direct.call_hook(SERVICE, FIRST_LINE, SORAFENIB_DRAFT, with_prefetch=False)
    sent = len(collapsing_proxy.seen)
    call = proxied.call_hook(SERVICE, FIRST_LINE, SORAFENIB_DRAFT, with_prefetch=False)
    assert call.status == 200, call.response
    searches = [target for _received, target in collapsing_proxy.seen[sent:] if "code=" in target]
    assert len(searches) == 2, "labs and tumour were fetched through the proxy"
    detail = " ".join(card["detail"] for card in call.response["cards"])
    assert "| AFP (> 400 ng/mL) | 1250 ng/mL |" in detail and "| ALT (> 40 U/L) | 65 U/L |" in detail
    assert _without_instance_ids(call.response["cards"]) == _without_instance_ids(expected.response["cards"])


def test_smart_app_through_the_proxy_shows_the_afp(stack, collapsing_proxy, page):
    context = app_context(
        as_of=AS_OF,
        scenario="first_line",
        hook_instance=str(uuid.uuid4()),
        service_id=SERVICE,
        drug_system=RXNORM,
        drug_code="495881",
        drug_display="sorafenib",
    )
    sent = len(collapsing_proxy.seen)
    _ehr_launch(stack, page, FIRST_LINE, context, iss=collapsing_proxy.base)
    features = page.locator("table", has=page.locator("caption", has_text="Mapped features")).inner_text()
    assert "1250 ng/mL" in features and "65 U/L" in features
    risk = page.locator("section", has=page.get_by_role("heading", name="Risk of primary sorafenib resistance"))
    assert re.search(r"\d+% \(95% CI \d+%–\d+%\)", risk.inner_text())
    app_searches = [target for _received, target in collapsing_proxy.seen[sent:] if "code=" in target]
    assert len(app_searches) == 2, "the app read labs and tumour through the proxy"
