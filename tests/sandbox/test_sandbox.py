"""The sandbox in Chromium, as a person clicks through it: three patients, the cards as the demo
EHR draws them, a suggestion applied to the FHIR server, a card dismissed with a reason, the
SMART app opened through an EHR launch; WCAG 2.1 AA under axe-core; Ctrl-C leaves no process.

Runs in file order: the last test stops the sandbox.
"""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

FIRST_LINE_HIGH = "v01-patient"  # vignette v01: AFP 1250 ng/mL and ALT 65 U/L
CONTRAINDICATED = "v09-patient"  # vignette v09: bleeding varices, lupus, liver transplant
SECOND_LINE = "hcc-second-line"  # sorafenib from 2025-01-06, progression 2025-03-06


def _open(page, sandbox, patient_id: str, drug: str) -> None:
    page.goto(sandbox.ehr_url)
    page.get_by_label("Patient").select_option(patient_id)
    page.get_by_label("Drug to order").select_option(drug)


def _select_order(page) -> None:
    page.get_by_role("button", name="Select order (order-select)").click()
    page.get_by_role("status").filter(has_text="order-select:").wait_for()


def test_bad_input_gets_a_json_4xx(sandbox):
    api = sandbox.ehr_url + "api/"
    not_json = requests.post(api + "hook", data="x", timeout=10)
    assert not_json.status_code == 400 and "JSON object" in not_json.json()["detail"]
    unknown = requests.post(api + "hook", json={"patientId": "nobody", "hook": "order-select"}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no sandbox patient 'nobody'"
    bad_drug = requests.post(
        api + "hook", json={"patientId": FIRST_LINE_HIGH, "hook": "order-select", "drug": "x"}, timeout=10
    )
    assert bad_drug.status_code == 400 and "drug must be one of" in bad_drug.json()["detail"]


def test_high_risk_patient_accepts_a_suggestion(sandbox, page, artifacts, axe):
    _open(page, sandbox, FIRST_LINE_HIGH, "sorafenib")
    assert "AFP 1250 ng/mL and ALT 65 U/L" in page.locator("#patient-description").inner_text()
    expect(page.locator("#record tbody")).to_contain_text("1250 ng/mL")
    _select_order(page)
    card = page.locator("article.card").first
    assert card.get_attribute("data-indicator") == "warning"
    assert card.locator(".indicator").inner_text().lower() == "warning"
    assert "AFP and ALT high" in card.get_by_role("heading").inner_text()
    assert card.locator(".detail table").count() >= 1, "the markdown table of the detail is rendered"
    assert "Lei" in card.locator(".source").inner_text()
    assert card.get_by_role("button", name=re.compile("SMART app")).is_visible()
    suggestion = card.get_by_role("group", name="Suggestions").get_by_role("button", name=re.compile("lenvatinib"))
    assert axe(page) == []
    page.screenshot(path=str(sandbox_shot(artifacts, "high-risk-cards")), full_page=True)

    suggestion.click()
    page.get_by_role("status").filter(has_text="fired again").wait_for()
    expect(page.locator("#record tbody")).to_contain_text("lenvatinib")  # written to the FHIR server
    exchange = page.locator("#exchange summary").all_inner_texts()
    assert exchange[0].startswith("POST /cds-services/hcc-systemic-therapy-select (order-select) → 200")
    assert any(text.startswith("Suggestion applied") and text.endswith("→ 200") for text in exchange)
    stored = requests.get(
        sandbox.urls["FHIR server"] + "/MedicationRequest", params={"patient": FIRST_LINE_HIGH}, timeout=10
    ).json()
    (created,) = [e["resource"] for e in stored.get("entry", []) if "lenvatinib" in str(e["resource"])]
    refired = page.locator("#exchange details").first.locator("pre").first.inner_text()
    assert f'"id": "{created["id"]}"' in refired, "the hook fired again for the order the suggestion stored"
    page.screenshot(path=str(sandbox_shot(artifacts, "high-risk-applied")), full_page=True)


def test_contraindicated_patient_is_not_offered_the_regimen_and_dismisses(sandbox, page, artifacts, axe):
    _open(page, sandbox, CONTRAINDICATED, "sorafenib")
    _select_order(page)
    card = page.locator("article.card").first
    detail = card.locator(".detail").inner_text()
    assert "atezolizumab + bevacizumab: not offered" in detail
    for code in ("I85.11", "M32.9", "Z94.4"):
        assert code in detail
    labels = card.get_by_role("group", name="Suggestions").get_by_role("button").all_inner_texts()
    assert labels and all("lenvatinib" in label and "atezolizumab" not in label for label in labels), labels

    page.get_by_role("button", name="Sign order (order-sign)").click()
    page.get_by_role("status").filter(has_text="order-sign:").wait_for()
    assert (
        page.locator("#exchange summary")
        .first.inner_text()
        .startswith("POST /cds-services/hcc-systemic-therapy-sign (order-sign) → 200")
    )
    card = page.locator("article.card").first
    card.get_by_role("button", name="Dismiss card").click()
    reasons = card.get_by_role("radio")
    assert reasons.count() >= 1, "the card offers override reasons"
    reasons.first.check()
    card.get_by_label("Comment (optional)").fill("discussed at tumour board")
    assert axe(page) == []
    page.screenshot(path=str(sandbox_shot(artifacts, "contraindicated-dismiss")), full_page=True)
    card.get_by_role("button", name="Send dismissal").click()
    page.get_by_role("status").filter(has_text="Card dismissed; feedback sent.").wait_for()
    feedback = page.locator("#exchange details").first.inner_text()
    assert '"outcome": "overridden"' in feedback and "discussed at tumour board" in feedback


def test_second_line_patient_opens_the_smart_app(sandbox, page, artifacts, axe):
    _open(page, sandbox, SECOND_LINE, "lenvatinib")
    expect(page.locator("#record tbody")).to_contain_text("Progressive disease")
    page.get_by_label("No prefetch").check()
    _select_order(page)
    request = page.locator("#exchange details").first.locator("pre").first.inner_text()
    assert '"prefetch"' not in request, "no prefetch: the service fetched the record itself"
    card = page.locator("article.card").first
    assert card.is_visible(), page.locator("#status").inner_text()
    with page.expect_popup() as popup_info:
        card.get_by_role("button", name=re.compile("SMART app")).click()
    app = popup_info.value
    app.wait_for_url(re.compile(r"/authorize\?"))
    assert axe(app) == [], "the sign-in page"
    app.get_by_label("User name").fill("clinician")
    app.get_by_label("Password").fill("test-password")
    app.get_by_role("button", name="Sign in and approve").click()
    app.wait_for_url(re.compile(r"/smart/app\?"))
    assert "Secondline" in app.get_by_role("heading", level=1).inner_text()
    for endpoint in ("pfs", "os"):
        assert app.locator(f"svg#chart-{endpoint}").is_visible()
    assert axe(app) == []
    app.screenshot(path=str(sandbox_shot(artifacts, "second-line-smart-app")), full_page=True)


def test_ctrl_c_stops_every_process(sandbox):
    assert len(sandbox.session_processes()) >= 3, "the sandbox, Node and gunicorn (with its worker) run"
    assert sandbox.interrupt() == 0
    assert sandbox.session_processes() == []
    for url in sandbox.urls.values():
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError:
            continue
        raise AssertionError(f"{url} still answers after Ctrl-C")


def sandbox_shot(artifacts, name: str):
    return artifacts / f"sandbox-{name}.png"
