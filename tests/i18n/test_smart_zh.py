"""Issue 28: the SMART app in Simplified Chinese, in Chromium, with CJK fonts installed.

The page follows the browser's Accept-Language (Playwright's context locale), else CDS_LOCALE.
Screenshots go to test-artifacts/. That Chinese text really rendered (no tofu) is checked by
drawing two different ideographs in the page's own font: real glyphs differ, missing-glyph
boxes are identical.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import date
from urllib.parse import urlencode

import pytest
import requests
from e2e.browser import artifacts, browser, browser_page  # noqa: F401  (fixtures)
from e2e.conftest import FIRST_LINE, SECOND_LINE, stack  # noqa: F401  (fixture)

from cds_sandbox.patients import own_patients
from cds_service.smart import app_context
from cds_service.smart.assessment import patient_name

from .pseudo import escapes, pseudo_locale
from .test_pseudo_locale import record_strings

AS_OF = date(2025, 6, 2)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# The footer's reference: bibliographic data, kept as published (<cite lang="en">).
CITATION = (
    "Lei J, et al. Prognostic impact of primary versus secondary resistance to sorafenib in patients with HCC. "
    "Ther Adv Med Oncol"
)
CONTEXTS = {
    SECOND_LINE: ("second_line", "1603296", "lenvatinib"),
    FIRST_LINE: ("first_line", "495881", "sorafenib"),
}
# Draws two ideographs in the font of the <h1> and compares the bitmaps.
GLYPHS_DIFFER = """() => {
  const font = getComputedStyle(document.querySelector('h1')).font;
  const draw = (ch) => {
    const c = document.createElement('canvas'); c.width = 64; c.height = 64;
    const g = c.getContext('2d'); g.font = font; g.fillText(ch, 4, 48);
    return c.toDataURL();
  };
  return draw('肝') !== draw('癌') && draw('癌') !== draw('\\uE000');
}"""
# The page's text, and each inline chart's (axis labels, legend, <title>, <desc>) line by line.
PAGE_TEXT = """() => {
  const charts = [...document.querySelectorAll('main svg')].map(
    (svg) => [...svg.querySelectorAll('text, title, desc')].map((node) => node.textContent).join('\\n'));
  return [document.querySelector('main').innerText, ...charts].join('\\n');
}"""


@pytest.fixture(scope="module", autouse=True)
def cjk_fonts():
    listed = subprocess.run(["fc-list", ":lang=zh-cn", "family"], capture_output=True, text=True, check=False)
    if shutil.which("fc-list") is None or not listed.stdout.strip():
        pytest.fail("no Simplified Chinese font: run scripts/test-setup.d/fonts.sh (fonts-noto-cjk)")


@pytest.fixture
def zh_page(browser):  # noqa: F811
    with browser_page(browser, "zh-CN") as page:
        yield page


def launch(stack, page, patient: str) -> None:  # noqa: F811
    scenario, code, display = CONTEXTS[patient]
    context = app_context(
        as_of=AS_OF,
        scenario=scenario,
        hook_instance=str(uuid.uuid4()),
        service_id="hcc-systemic-therapy-select",
        drug_system=RXNORM,
        drug_code=code,
        drug_display=display,
    )
    token = requests.post(f"{stack.auth.url}/launch", json={"patient": patient, "appContext": context}, timeout=10)
    query = urlencode({"iss": stack.fhir_base, "launch": token.json()["launch"]})
    page.goto(f"{stack.cds_url}/smart/launch?{query}")
    page.wait_for_url(re.compile(r"/authorize\?"))
    page.get_by_label("User name").fill("clinician")
    page.get_by_label("Password").fill("test-password")
    page.get_by_role("button", name="Sign in and approve").click()
    page.wait_for_url(re.compile(r"/smart/app\?"))


def test_second_line_page_in_chinese_renders_chinese_glyphs(stack, zh_page, artifacts):  # noqa: F811
    launch(stack, zh_page, SECOND_LINE)
    zh_page.screenshot(path=str(artifacts / "smart-app-second-line-zh-CN.png"), full_page=True)
    assert zh_page.locator("html").get_attribute("lang") == "zh-CN"
    assert zh_page.get_by_role("heading", level=1).inner_text().startswith("肝细胞癌系统治疗：")
    assert "2025年6月2日" in zh_page.locator(".context").first.inner_text()
    for title in ("无进展生存期", "总生存期"):
        assert zh_page.get_by_role("heading", name=title, level=3).is_visible()
        table = zh_page.locator("table", has=zh_page.locator("caption", has_text=f"{title}：各月概率"))
        assert "单用TKI" in table.inner_text() and "TKI + PD-1抑制剂" in table.inner_text()
    history = zh_page.locator("table", has=zh_page.locator("caption", has_text="索拉非尼治疗史")).inner_text()
    assert "原发性" in history
    assert zh_page.evaluate(GLYPHS_DIFFER), "Chinese text drew as missing-glyph boxes (tofu)"


def test_first_line_page_in_chinese(stack, zh_page, artifacts):  # noqa: F811
    launch(stack, zh_page, FIRST_LINE)
    zh_page.screenshot(path=str(artifacts / "smart-app-first-line-zh-CN.png"), full_page=True)
    risk = zh_page.locator("section", has=zh_page.get_by_role("heading", name="索拉非尼原发性耐药风险")).inner_text()
    assert re.search(r"\d+%（95% 置信区间 \d+%–\d+%）|\d+% \(95% 置信区间 \d+%–\d+%\)", risk), risk
    assert "模型拟合数据中的发生率：165/424" in risk and "区分度有限" in risk
    assert zh_page.evaluate(GLYPHS_DIFFER)


@pytest.mark.parametrize("patient", [SECOND_LINE, FIRST_LINE])
def test_no_app_text_escapes_the_catalogue(stack, zh_page, monkeypatch, patient):  # noqa: F811
    """Pseudo-locale run of the app page (the stack's service runs in this process)."""
    bundles = [p.transaction() for p in own_patients()]
    record = record_strings(bundles) | {patient_name(e["resource"]) for b in bundles for e in b["entry"]}
    with pseudo_locale(monkeypatch):
        launch(stack, zh_page, patient)
        text = zh_page.evaluate(PAGE_TEXT)
        title = zh_page.title()
    assert title.startswith("⟦"), title
    assert "⟦Months⟧" in text and "⟦Probability⟧" in text  # the charts were read too
    assert escapes(text, record | {CITATION}) == [], escapes(text, record | {CITATION})


@pytest.mark.parametrize(
    ("default", "accept", "chinese"),
    [
        ("en", "zh-CN,zh;q=0.9,en;q=0.8", True),
        ("en", "en-GB,en", False),
        ("zh_CN", "fr-FR", True),
        ("zh_CN", "en-US", False),
    ],
)
def test_error_pages_follow_accept_language_then_the_default(live_server, default, accept, chinese):
    server = live_server(locale=default)
    response = requests.get(f"{server.url}/smart/app", headers={"Accept-Language": accept}, timeout=10)
    assert response.status_code == 400
    assert ('lang="zh-CN"' in response.text) is chinese
    assert ("请从电子病历系统中打开本应用" in response.text) is chinese
    assert ("Open this app from the EHR" in response.text) is not chinese
