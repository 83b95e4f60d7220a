"""SMART App Launch 2 against the e2e stack: discovery, PKCE, EHR and standalone launch in Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import date
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from cds_service.smart import app_context, parse_app_context

from .conftest import CLIENT_ID, FIRST_LINE, SECOND_LINE

AS_OF = date(2025, 6, 2)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _login(page) -> None:
    page.get_by_label("User name").fill("clinician")
    page.get_by_label("Password").fill("test-password")
    page.get_by_role("button", name="Sign in and approve").click()


def _ehr_launch(stack, page, patient: str, context: str | None, iss: str | None = None) -> None:
    launch = requests.post(
        f"{stack.auth.url}/launch", json={"patient": patient, "appContext": context}, timeout=10
    ).json()["launch"]
    page.goto(f"{stack.cds_url}/smart/launch?{urlencode({'iss': iss or stack.fhir_base, 'launch': launch})}")
    page.wait_for_url(re.compile(r"/authorize\?"))
    _login(page)
    page.wait_for_url(re.compile(r"/smart/app\?"))


def test_smart_configuration_is_served_for_the_fhir_base(stack):
    config = requests.get(f"{stack.fhir_base}/.well-known/smart-configuration", timeout=10).json()
    assert config["authorization_endpoint"] == f"{stack.auth.url}/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "launch-ehr" in config["capabilities"]


def test_fhir_server_search_semantics(stack):
    """Read, token search with system|code, reference by bare id, _sort and _count."""
    base = stack.fhir_base
    assert requests.get(f"{base}/Patient/{FIRST_LINE}", timeout=10).json()["id"] == FIRST_LINE
    assert requests.get(f"{base}/Patient/nobody", timeout=10).status_code == 404
    afp = requests.get(
        f"{base}/Observation", params={"patient": FIRST_LINE, "code": "http://loinc.org|1834-1"}, timeout=10
    ).json()
    assert [e["resource"]["valueQuantity"]["value"] for e in afp["entry"]] == [1250]
    both = requests.get(
        f"{base}/Observation",
        params={"patient": SECOND_LINE, "_sort": "-date", "_count": "2"},
        timeout=10,
    ).json()
    dates = [e["resource"]["effectiveDateTime"] for e in both["entry"]]
    assert len(dates) == 2 and dates == sorted(dates, reverse=True)
    other = requests.get(f"{base}/Observation", params={"patient": "nobody"}, timeout=10).json()
    assert other.get("entry", []) == []


def test_pkce_is_enforced(stack):
    """No challenge → refused at /authorize; a wrong verifier → refused at /token."""
    redirect_uri = f"{stack.cds_url}/smart/app"
    base = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": "launch/patient patient/Patient.rs",
        "state": "s1",
        "aud": stack.fhir_base,
    }
    no_pkce = requests.get(f"{stack.auth.url}/authorize", params=base, allow_redirects=False, timeout=10)
    assert no_pkce.status_code == 400 and "PKCE" in no_pkce.text
    plain = requests.get(
        f"{stack.auth.url}/authorize",
        params={**base, "code_challenge": "a" * 43, "code_challenge_method": "plain"},
        allow_redirects=False,
        timeout=10,
    )
    assert plain.status_code == 400

    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    approved = requests.post(
        f"{stack.auth.url}/authorize",
        data={
            **base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "username": "clinician",
            "password": "test-password",
            "patient": FIRST_LINE,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert approved.status_code == 302, approved.text
    code = parse_qs(urlparse(approved.headers["Location"]).query)["code"][0]
    token_request = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID,
    }
    wrong = requests.post(f"{stack.auth.url}/token", data={**token_request, "code_verifier": "w" * 64}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_app_page_without_a_launch_explains_itself(stack):
    response = requests.get(f"{stack.cds_url}/smart/app", params={"code": "x", "state": "y"}, timeout=10)
    assert response.status_code == 400
    assert "Launch the app again" in response.text
    assert 'lang="en"' in response.text


def test_launch_refuses_a_non_http_iss(stack):
    response = requests.get(f"{stack.cds_url}/smart/launch", params={"iss": "file:///etc/passwd"}, timeout=10)
    assert response.status_code == 403


def test_app_context_round_trip():
    text = app_context(
        as_of=AS_OF,
        scenario="second_line",
        hook_instance="h-1",
        service_id="hcc-systemic-therapy-select",
        drug_system=RXNORM,
        drug_code="1603296",
        drug_display="lenvatinib",
    )
    assert isinstance(text, str) and len(text) < 400
    parsed = parse_app_context(text)
    assert parsed.as_of == AS_OF and parsed.scenario == "second_line" and parsed.hook_instance == "h-1"
    assert parsed.draft.code == "1603296"
    assert json.loads(text)["v"] == 1


def test_ehr_launch_second_line_shows_curves(stack, page, artifacts):
    hook_instance = str(uuid.uuid4())
    context = app_context(
        as_of=AS_OF,
        scenario="second_line",
        hook_instance=hook_instance,
        service_id="hcc-systemic-therapy-select",
        drug_system=RXNORM,
        drug_code="1603296",
        drug_display="lenvatinib",
    )
    _ehr_launch(stack, page, SECOND_LINE, context)
    page.screenshot(path=str(artifacts / "smart-app-second-line.png"), full_page=True)

    assert page.locator("html").get_attribute("lang") == "en"
    assert "Secondline" in page.get_by_role("heading", level=1).inner_text()
    assert "2025-06-02" in page.locator(".context").first.inner_text()
    assert hook_instance in page.content()
    # Features with sources and dates.
    features = page.locator("table", has=page.locator("caption", has_text="Mapped features"))
    assert "1834-1" in features.inner_text() or "Alpha-1-Fetoprotein" in features.inner_text()
    assert "2025-05-22" in features.inner_text()
    history = page.locator("table", has=page.locator("caption", has_text="Sorafenib history")).inner_text()
    assert "primary" in history
    # Curves: PFS and OS, TKI vs TKI + PD-1, with bands, titles, descriptions and tables.
    for endpoint, title in (("pfs", "Progression-free survival"), ("os", "Overall survival")):
        assert page.get_by_role("heading", name=title, level=3).is_visible()
        svg = page.locator(f"svg#chart-{endpoint}")
        assert svg.is_visible()
        assert svg.locator("title").first.text_content() == title
        assert "TKI + PD-1 inhibitor" in svg.locator("desc").first.text_content()
        assert svg.locator("path").count() > 10
        table = page.locator("table", has=page.locator("caption", has_text=f"{title}: probability"))
        assert "TKI alone" in table.inner_text() and "TKI + PD-1 inhibitor" in table.inner_text()
    text = page.locator("main").inner_text()
    assert "10.1177/17588359241299678" in text
    assert page.get_by_role("link", name="model card").is_visible()
    # The app read the record with the token the auth server issued.
    seen = requests.get(stack.fhir_base.rsplit("/fhir", 1)[0] + "/_requests", timeout=10).json()
    app_reads = [r for r in seen if SECOND_LINE in r["url"] and r["authorization"]]
    assert app_reads and all(r["authorization"].startswith("Bearer ") for r in app_reads)


def test_ehr_launch_first_line_shows_risk(stack, page, artifacts):
    context = app_context(
        as_of=AS_OF,
        scenario="first_line",
        hook_instance=str(uuid.uuid4()),
        service_id="hcc-systemic-therapy-select",
        drug_system=RXNORM,
        drug_code="495881",
        drug_display="sorafenib",
    )
    _ehr_launch(stack, page, FIRST_LINE, context)
    page.screenshot(path=str(artifacts / "smart-app-first-line.png"), full_page=True)
    risk = page.locator("section", has=page.get_by_role("heading", name="Risk of primary sorafenib resistance"))
    text = risk.inner_text()
    assert re.search(r"\d+% \(95% CI \d+%–\d+%\)", text), text
    assert "Rate in the data the model was fitted to: 165/424" in text and "the study: 165/424" in text
    assert "discrimination is modest" in text
    features = page.locator("table", has=page.locator("caption", has_text="Mapped features")).inner_text()
    assert "1250 ng/mL" in features and "65 U/L" in features


def test_standalone_launch_lets_the_user_pick_the_patient(stack, page):
    page.goto(f"{stack.cds_url}/smart/launch?{urlencode({'iss': stack.fhir_base})}")
    page.wait_for_url(re.compile(r"/authorize\?"))
    assert "launch/patient" in page.content()
    page.get_by_label("Patient id").fill(FIRST_LINE)
    _login(page)
    page.wait_for_url(re.compile(r"/smart/app\?"))
    assert "Firstline" in page.get_by_role("heading", level=1).inner_text()
