"""Issue 22, item 4: FHIR-derived strings reach a card's Markdown `detail` inert. Hostile text in a
unit, a resource id, a coding display and a prefetch failure's reason must not become a link, an
image, HTML or a broken table once the detail is rendered as an EHR would render it."""

from __future__ import annotations

import re

import markdown
from fhir_factory import condition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cards_e2e import call, first_line_record, sorafenib_draft

HOSTILE = [
    "![x](http://evil.example/px.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "a|b|c",
    "line\nbreak\r\n| injected | row |",
    "**bold** _it_ `code`",
    "\\[escaped]\\(x)",
]
fragment = st.sampled_from(HOSTILE) | st.text(alphabet="<>[]()!|*_`\\\n#-: abcjavscript", max_size=30)


def rendered(detail: str) -> str:
    return markdown.markdown(detail, extensions=["tables"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=fragment.filter(str.strip), rid=fragment, display=fragment)
def test_hostile_fhir_strings_stay_text(server, unit, rid, display):
    record = first_line_record()
    record[1]["id"] = "alt-" + re.sub(r"[^A-Za-z0-9]", "", rid)[:20]  # a FHIR id cannot hold them...
    record[0]["valueQuantity"]["unit"] = unit  # ...but the AFP's unit text can (its UCUM code converts)
    varices = condition("I85.11", display, system="http://hl7.org/fhir/sid/icd-10-cm")  # shown as the finding
    body_record = [*record, varices]
    (card,) = call(server, body_record, [sorafenib_draft()])["cards"]
    assert "I85.11" in card["detail"], "the hostile display is shown with the withheld regimen"
    html = rendered(card["detail"])
    assert "<img" not in html and "<script" not in html
    assert "<a " not in html, "no FHIR string may become a link"
    assert "<em>" not in html and "<strong>bold" not in html
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        assert len(re.findall(r"<t[dh]", row)) == 5, "a FHIR string broke the marker table"
