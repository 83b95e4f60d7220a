"""A small, dependency-free SVG plotter for the service's charts.

The service draws a few simple charts (survival steps, reference curves, shaded bands); a plotting
library would cost seconds of import time and most of the image for that. Styling is done with
presentation attributes only (no ``style`` attributes or elements), so the output works under a
Content-Security-Policy without ``'unsafe-inline'`` styles. Every label is XML-escaped, and the
font list ends in the generic ``sans-serif`` so the reader's system supplies glyphs for any script.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

FONT_FAMILY = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans CJK SC', "
    "'PingFang SC', 'Microsoft YaHei', Arial, sans-serif"
)
FONT_SIZE = 12.0
TITLE_SIZE = 14.0
LEGEND_SIZE = 11.0
TEXT_COLOUR = "#222222"
GRID_COLOUR = "#d9d9d9"
BAND_OPACITY = 0.15
MIN_PLOT_HEIGHT = 120.0

# XML 1.0 forbids these code points even as character references; they become U+FFFD.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """One curve. ``low``/``high`` (same length as ``x``) shade a band drawn like the curve."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str
    kind: Literal["step", "line", "points"] = "line"
    dashed: bool = False
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    dash_pattern: str = "6 4"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: x has {len(self.x)} values, y has {len(self.y)}")
        for name, band in (("low", self.low), ("high", self.high)):
            if band is not None and len(band) != len(self.x):
                raise ValueError(f"series {self.label!r}: {name} has {len(band)} values, x has {len(self.x)}")
        if (self.low is None) != (self.high is None):
            raise ValueError(f"series {self.label!r}: a band needs both low and high")


def render_svg(
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] = (0.0, 1.0),
    width: int = 640,
    height: int = 400,
    element_id: str | None = None,
    responsive: bool = False,
    css_class: str | None = None,
) -> str:
    """A complete ``<svg>`` element (no XML prologue) with ``role="img"``, ``<title>`` and ``<desc>``.

    ``element_id`` prefixes the ids inside (pass distinct ids for several charts on one page; by
    default they derive from the title and description). ``responsive`` leaves out ``width`` and
    ``height`` so CSS sizes the chart by its viewBox. The legend goes below the axes; when it has
    many entries the drawing grows rather than squeezing the plot below ``MIN_PLOT_HEIGHT``.
    """
    x_lo, x_hi = _range(x_range, (v for s in series for v in s.x))
    y_lo, y_hi = _range(y_range, ())
    prefix = element_id or "svgplot-" + hashlib.sha256(f"{title}\0{description}".encode()).hexdigest()[:10]

    legend_rows = _legend_rows(series, width - 40.0)
    left, right, top = 64.0, 20.0, 36.0
    bottom = 56.0 + len(legend_rows) * LEGEND_SIZE * 1.7
    total_height = max(float(height), top + bottom + MIN_PLOT_HEIGHT)
    plot = _Frame(left, top, width - left - right, total_height - top - bottom, x_lo, x_hi, y_lo, y_hi)

    out: list[str] = []
    attrs = [
        'xmlns="http://www.w3.org/2000/svg"',
        f'viewBox="0 0 {width} {_n(total_height)}"',
        "" if responsive else f'width="{width}" height="{_n(total_height)}"',
        f'id="{_attr(element_id)}"' if element_id else "",
        f'class="{_attr(css_class)}"' if css_class else "",
        'role="img"',
        f'aria-labelledby="{_attr(prefix)}-title {_attr(prefix)}-desc"',
    ]
    out.append("<svg " + " ".join(a for a in attrs if a) + ">")
    out.append(f'<title id="{_attr(prefix)}-title">{_text(title)}</title>')
    out.append(f'<desc id="{_attr(prefix)}-desc">{_text(description)}</desc>')
    clip = f"{prefix}-clip"
    out.append(
        f'<defs><clipPath id="{_attr(clip)}"><rect x="{_n(plot.left)}" y="{_n(plot.top)}" '
        f'width="{_n(plot.width)}" height="{_n(plot.height)}"/></clipPath></defs>'
    )
    out.append(f'<g font-family="{FONT_FAMILY}" font-size="{_n(FONT_SIZE)}" fill="{TEXT_COLOUR}">')
    out.append(
        f'<text x="{_n(width / 2)}" y="{_n(top - 14)}" text-anchor="middle" font-size="{_n(TITLE_SIZE)}">'
        f"{_text(title)}</text>"
    )
    out.extend(_axes(plot, x_label, y_label))
    out.append(f'<g clip-path="url(#{_attr(clip)})">')
    for s in series:
        out.extend(_band(plot, s))
    for s in series:
        out.extend(_curve(plot, s))
    out.append("</g>")
    out.extend(_legend(legend_rows, width, plot.top + plot.height + 60.0))
    out.append("</g></svg>")
    return "".join(out)


@dataclass(frozen=True)
class _Frame:
    """The plot area in SVG units and the data ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def px(self, x: float) -> float:
        return self.left + (x - self.x_lo) / (self.x_hi - self.x_lo) * self.width

    def py(self, y: float) -> float:
        return self.top + self.height - (y - self.y_lo) / (self.y_hi - self.y_lo) * self.height


def _range(given: tuple[float, float] | None, data: Iterable[float]) -> tuple[float, float]:
    if given is not None:
        lo, hi = float(given[0]), float(given[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range must be two finite numbers, low < high: {given}")
        return lo, hi
    values = [float(v) for v in data if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    return (lo, hi) if lo < hi else (lo - 0.5, hi + 0.5)


def ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9)
    values = []
    k = first
    while k * step <= hi + step * 1e-9:
        values.append(round(k * step, 12))
        k += 1
    return values


def _tick_label(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def _axes(plot: _Frame, x_label: str, y_label: str) -> list[str]:
    bottom, right = plot.top + plot.height, plot.left + plot.width
    grid, marks, labels = [], [], []
    for x in ticks(plot.x_lo, plot.x_hi):
        px = plot.px(x)
        grid.append(f"M{_n(px)} {_n(plot.top)}V{_n(bottom)}")
        marks.append(f"M{_n(px)} {_n(bottom)}v5")
        labels.append(f'<text x="{_n(px)}" y="{_n(bottom + 18)}" text-anchor="middle">{_tick_label(x)}</text>')
    for y in ticks(plot.y_lo, plot.y_hi):
        py = plot.py(y)
        grid.append(f"M{_n(plot.left)} {_n(py)}H{_n(right)}")
        marks.append(f"M{_n(plot.left)} {_n(py)}h-5")
        labels.append(f'<text x="{_n(plot.left - 8)}" y="{_n(py + 4)}" text-anchor="end">{_tick_label(y)}</text>')
    middle_y = plot.top + plot.height / 2
    return [
        *(f'<path d="{line}" fill="none" stroke="{GRID_COLOUR}" stroke-width="1"/>' for line in grid),
        f'<path d="M{_n(plot.left)} {_n(plot.top)}V{_n(bottom)}H{_n(right)}" fill="none" '
        f'stroke="{TEXT_COLOUR}" stroke-width="1"/>',
        f'<path d="{"".join(marks)}" fill="none" stroke="{TEXT_COLOUR}" stroke-width="1"/>',
        *labels,
        f'<text x="{_n(plot.left + plot.width / 2)}" y="{_n(bottom + 36)}" text-anchor="middle">'
        f"{_text(x_label)}</text>",
        f'<text x="{_n(plot.left - 44)}" y="{_n(middle_y)}" text-anchor="middle" '
        f'transform="rotate(-90 {_n(plot.left - 44)} {_n(middle_y)})">{_text(y_label)}</text>',
    ]


def _finite_runs(points: Iterable[tuple[float, ...]]) -> list[list[tuple[float, ...]]]:
    """Consecutive runs of points whose values are all finite: a gap in the data breaks the line."""
    runs: list[list[tuple[float, ...]]] = [[]]
    for point in points:
        if all(math.isfinite(v) for v in point):
            runs[-1].append(point)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _outline(plot: _Frame, xs: Sequence[float], ys: Sequence[float], step: bool) -> list[tuple[float, float]]:
    """Vertices of the curve in SVG units; a step curve holds each value until the next x (post)."""
    vertices: list[tuple[float, float]] = []
    for index, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if step and index:
            vertices.append((plot.px(x), vertices[-1][1]))
        vertices.append((plot.px(x), plot.py(y)))
    return vertices


def _path_data(vertices: Sequence[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{_n(x)} {_n(y)}" for x, y in vertices)


def _band(plot: _Frame, s: Series) -> list[str]:
    if s.low is None or s.high is None:
        return []
    shapes = []
    for run in _finite_runs(zip(s.x, s.low, s.high, strict=True)):
        xs = [p[0] for p in run]
        upper = _outline(plot, xs, [p[2] for p in run], s.kind == "step")
        lower = _outline(plot, xs, [p[1] for p in run], s.kind == "step")
        shapes.append(
            f'<path d="{_path_data(upper + lower[::-1])}Z" fill="{_attr(s.colour)}" '
            f'fill-opacity="{BAND_OPACITY}" stroke="none"/>'
        )
    return shapes


def _curve(plot: _Frame, s: Series) -> list[str]:
    runs = _finite_runs(zip(s.x, s.y, strict=True))
    if s.kind == "points":
        return [
            f'<circle cx="{_n(plot.px(x))}" cy="{_n(plot.py(y))}" r="3" fill="{_attr(s.colour)}"/>'
            for run in runs
            for x, y in run
        ]
    dash = _dash(s)
    return [
        f'<path d="{_path_data(_outline(plot, [p[0] for p in run], [p[1] for p in run], s.kind == "step"))}" '
        f'fill="none" stroke="{_attr(s.colour)}" stroke-width="2" stroke-linejoin="round"{dash}/>'
        for run in runs
    ]


def _dash(s: Series) -> str:
    return f' stroke-dasharray="{_attr(s.dash_pattern)}"' if s.dashed else ""


def text_width(text: str, size: float) -> float:
    """Estimated rendered width: wide (CJK) characters take a full em, combining marks none."""
    em = 0.0
    for char in text:
        if unicodedata.combining(char):
            continue
        em += 1.0 if unicodedata.east_asian_width(char) in ("W", "F") else 0.6
    return em * size


def _legend_rows(series: Sequence[Series], available: float) -> list[list[Series]]:
    """Two entries a row when the longest fits in half the width, otherwise one."""
    if not series:
        return []
    widest = max(30.0 + text_width(s.label, LEGEND_SIZE) for s in series)
    per_row = 2 if widest * 2 <= available else 1
    return [list(series[i : i + per_row]) for i in range(0, len(series), per_row)]


def _legend(rows: list[list[Series]], width: int, top: float) -> list[str]:
    out = []
    column = (width - 40.0) / 2
    for row_index, row in enumerate(rows):
        y = top + row_index * LEGEND_SIZE * 1.7
        for col_index, s in enumerate(row):
            x = 20.0 + col_index * column
            if s.kind == "points":
                out.append(f'<circle cx="{_n(x + 11)}" cy="{_n(y - 4)}" r="3" fill="{_attr(s.colour)}"/>')
            else:
                dash = _dash(s)
                out.append(f'<path d="M{_n(x)} {_n(y - 4)}h22" stroke="{_attr(s.colour)}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{_n(x + 28)}" y="{_n(y)}" font-size="{_n(LEGEND_SIZE)}">{_text(s.label)}</text>')
    return out


def _n(value: float) -> str:
    """Coordinates to two decimals: enough for a screen, and stable output for equal input."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text(value: str) -> str:
    return escape(_XML_INVALID.sub("\ufffd", value), quote=False)


def _attr(value: str) -> str:
    return escape(_XML_INVALID.sub("\ufffd", value), quote=True)
