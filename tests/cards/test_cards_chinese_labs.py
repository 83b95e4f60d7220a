"""Issue 28, item 4: a first-line hook call whose AFP and ALT arrive as a Chinese hospital sends
them — local codes known only by their Chinese names, the AFP as a text result — over HTTP."""

from __future__ import annotations

import re

import pytest
from fhir_factory import endoscopy, hcc_hbv_conditions, local_lab
from test_cards_e2e import call, child_pugh, lenvatinib_draft, second_line_record, sorafenib_draft

WHEN = "2026-11-12"  # eight days before the order


def record(afp: dict) -> list[dict]:
    alt = local_lab("alt-lis", "LIS-ALT", WHEN, text="谷丙转氨酶", valueQuantity={"value": 52, "unit": "U/L"})
    return [afp, alt, *hcc_hbv_conditions(), child_pugh("A"), endoscopy("2026-09-15")]


def afp_text(result: str) -> dict:
    return local_lab("afp-lis", "LIS-AFP", WHEN, display="甲胎蛋白", valueString=result)


def marker_row(detail: str, marker: str) -> str:
    (row,) = re.findall(rf"^\| {marker} \(.*$", detail, flags=re.M)
    return row


@pytest.mark.parametrize(
    ("locale", "says", "yes"),
    [
        ("en", "\\>1210 ng/mL, read from the text result '＞1210 ng/mL'", "**yes**"),
        ("zh_CN", "\\>1210 ng/mL，由文本结果“＞1210 ng/mL”读取", "**是**"),
    ],
)
def test_named_local_codes_and_a_text_afp_give_the_estimate_and_say_so(live_server, locale, says, yes):
    server = live_server(locale=locale)
    (card,) = call(server, record(afp_text("＞1210 ng/mL")), [sorafenib_draft()])["cards"]
    assert card["indicator"] == "warning", "AFP > 400 (comparator '>') and ALT > 40 both count"
    afp_row, alt_row = marker_row(card["detail"], "AFP"), marker_row(card["detail"], "ALT")
    assert says in afp_row and "Observation/afp-lis" in afp_row and afp_row.endswith(f"| {yes} |")
    assert "52 U/L" in alt_row and "Observation/alt-lis" in alt_row and alt_row.endswith(f"| {yes} |")
    assert "read from the text" not in alt_row and "文本结果" not in alt_row, "a coded quantity is not text"


@pytest.mark.parametrize("result", ["阴性", "10-20", "1,210"])
def test_an_unreadable_text_afp_is_reported_invalid_with_the_text_quoted(server, result):
    (card,) = call(server, record(afp_text(result)), [sorafenib_draft()])["cards"]
    assert card["summary"].startswith("Sorafenib resistance risk not estimated: needs AFP")
    (line,) = [line for line in card["detail"].splitlines() if line.startswith("- **AFP**")]
    assert f"AFP text result '{result}' is not one number" in line


def test_afp_l3_percent_is_not_used_as_afp(server):
    l3 = local_lab("afp-l3", "LIS-AFPL3", WHEN, display="AFP-L3%", valueQuantity={"value": 35, "unit": "%"})
    (card,) = call(server, record(l3), [sorafenib_draft()])["cards"]
    assert card["summary"].startswith("Sorafenib resistance risk not estimated: needs AFP")
    assert "afp-l3" not in card["detail"]


def test_the_second_line_card_says_its_afp_was_read_from_text(server):
    """Ramucirumab's AFP threshold in the guideline context: the same words as the first line's."""
    afp = local_lab("afp-lis", "LIS-AFP", "2026-11-10", text="甲胎蛋白", valueString="≥400 ng/mL")
    (card,) = call(server, second_line_record("2026-05-01", extra=[afp]), [lenvatinib_draft()])["cards"]
    assert "AFP >=400 ng/mL, read from the text result '≥400 ng/mL' (meets ≥ 400 ng/mL)" in card["detail"]
