"""cds_service.svg_plot: valid, accessible SVG whose shapes sit where the data says."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from cds_service.svg_plot import FONT_FAMILY, Series, render_svg, ticks

SVG = "{http://www.w3.org/2000/svg}"


def _render(series: list[Series], **kw) -> ET.Element:
    options = {"title": "PFS", "description": "Two arms.", "x_label": "Months", "y_label": "Probability", **kw}
    return ET.fromstring(render_svg(series, **options))


def _paths(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}path"))


def _points(d: str | None) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", d or "")]


def _attribute(element: ET.Element, name: str) -> str:
    value = element.get(name)
    assert value is not None, f"<{element.tag}> has no {name}"
    return value


def test_named_for_assistive_technology():
    root = _render([Series("TKI", [0, 1], [1, 0.5], "#0072B2")], element_id="chart-pfs", responsive=True)
    assert root.get("role") == "img" and root.get("id") == "chart-pfs"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert (title.text, desc.text) == ("PFS", "Two arms.")
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert root.get("width") is None and root.get("viewBox")  # sized by CSS when responsive


def test_labels_are_escaped_and_any_script_is_kept():
    label = 'AFP < 400 & "ALT" 甲胎蛋白\x07'
    text = render_svg(
        [Series(label, [0, 1], [1, 0.5], '#000" onload="x')],
        title="<script>",
        description="d",
        x_label="月",
        y_label="y",
    )
    root = ET.fromstring(text)  # well-formed despite the markup in the inputs
    assert "<script>" not in text
    assert not any("onload" in element.attrib for element in root.iter())  # the colour stayed one attribute
    assert any(p.get("stroke") == '#000" onload="x' for p in _paths(root))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert 'AFP < 400 & "ALT" 甲胎蛋白\ufffd' in texts and "<script>" in texts and "月" in texts
    families = [g.get("font-family") for g in root.iter(f"{SVG}g") if g.get("font-family")]
    assert families == [FONT_FAMILY] and FONT_FAMILY.endswith("sans-serif")


def test_step_curve_holds_each_value_until_the_next_time():
    root = _render([Series("arm", [0, 5, 10], [1.0, 0.5, 0.25], "#0072B2", kind="step")], x_range=(0, 10))
    curve = next(p for p in _paths(root) if p.get("stroke") == "#0072B2" and p.get("fill") == "none")
    points = _points(curve.get("d"))
    assert len(points) == 5  # (0,1) (5,1) (5,.5) (10,.5) (10,.25)
    assert points[0][1] == points[1][1] and points[1][0] == points[2][0]  # across, then down
    assert points[2][1] > points[1][1]  # survival fell: further down the picture
    assert points[0][0] < points[1][0] < points[3][0]


def test_band_dashes_and_points():
    root = _render(
        [
            Series("arm", [0, 1, 2], [1, 0.8, 0.6], "#D55E00", kind="step", low=[1, 0.7, 0.5], high=[1, 0.9, 0.7]),
            Series("reference", [0, 2], [1, 0.5], "#555555", dashed=True),
            Series("observed", [0.5, 1.5], [0.9, 0.7], "#009E73", kind="points"),
        ]
    )
    bands = [p for p in _paths(root) if p.get("fill-opacity")]
    assert len(bands) == 1 and bands[0].get("fill") == "#D55E00" and _attribute(bands[0], "d").endswith("Z")
    assert any(p.get("stroke-dasharray") for p in _paths(root) if p.get("stroke") == "#555555")
    assert len([c for c in root.iter(f"{SVG}circle") if c.get("fill") == "#009E73"]) == 3  # 2 + legend


def test_gaps_in_the_data_break_the_line():
    root = _render([Series("arm", [0, 1, 2, 3], [1, float("nan"), 0.5, 0.4], "#0072B2")])
    curves = [p for p in _paths(root) if p.get("stroke") == "#0072B2" and "h22" not in _attribute(p, "d")]
    assert len(curves) == 2


def test_legend_grows_the_drawing_instead_of_squeezing_the_plot():
    few = _render([Series("a", [0, 1], [1, 0], "#000")], height=300)
    many = _render([Series(f"series {i} " + "x" * 60, [0, 1], [1, 0], "#000") for i in range(12)], height=300)
    assert float(_attribute(few, "height")) == 300 and float(_attribute(many, "height")) > 300


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0, 1.02, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0, 24, [0, 5, 10, 15, 20]), (0, 36, [0, 10, 20, 30])],
)
def test_ticks_are_round_numbers(lo, hi, expected):
    assert ticks(lo, hi) == pytest.approx(expected)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="x has 2 values, y has 1"):
        Series("a", [0, 1], [1], "#000")
    with pytest.raises(ValueError, match="low and high"):
        Series("a", [0, 1], [1, 0], "#000", low=[1, 0])
    with pytest.raises(ValueError, match="range"):
        render_svg([], title="t", description="d", x_label="x", y_label="y", x_range=(1, 1))
