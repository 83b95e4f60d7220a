"""How the demo EHR turns a card's markdown detail into HTML (no browser needed)."""

from __future__ import annotations

from cds_sandbox.demo_ehr import render_detail


def test_raw_html_in_a_detail_is_shown_as_text():
    rendered = render_detail('<script>alert("x")</script> and <img src=x onerror=alert(1)>')
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in rendered


def test_a_list_right_after_a_paragraph_line_is_a_list_as_on_github():
    rendered = render_detail("**Screened:**\n- lenvatinib: fine\n- atezolizumab: not offered")
    assert "<ul>\n<li>lenvatinib: fine</li>\n<li>atezolizumab: not offered</li>\n</ul>" in rendered


def test_tables_and_thresholds_render():
    rendered = render_detail("| Marker | Value |\n|---|---|\n| AFP (> 400 ng/mL) | 1250 ng/mL |")
    assert "<td>AFP (&gt; 400 ng/mL)</td>" in rendered
