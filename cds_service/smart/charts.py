"""Survival curves as inline SVG, drawn on the server with matplotlib's SVG backend.

No JavaScript and nothing fetched at run time, so the chart renders inside an EHR iframe on a
closed network. Each SVG carries ``role="img"``, a ``<title>`` and a ``<desc>``; the page puts a
table with the same numbers beside it.
"""

from __future__ import annotations

import io
import re
from html import escape

from matplotlib import rc_context
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from .assessment import Curve, SurvivalPanel

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies, and > 4.5:1
# against white for the lines' labels.
ARM_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
REFERENCE_COLOUR = "#555555"


def _step(ax, curve: Curve, colour: str, style: str, band: bool) -> None:
    ax.step(curve.times, curve.survival, where="post", color=colour, linestyle=style, linewidth=2, label=curve.label)
    if band and curve.low and curve.high:
        ax.fill_between(curve.times, curve.low, curve.high, step="post", color=colour, alpha=0.15, linewidth=0)


def describe(panel: SurvivalPanel) -> str:
    parts = []
    for curve in panel.curves + panel.reference:
        median = f"median {curve.median_months:.1f} months" if curve.median_months is not None else "median not reached"
        parts.append(f"{curve.label}: {median}")
    bands = " Shaded areas are 95% confidence bands." if any(c.low for c in panel.curves) else ""
    return f"{panel.title}, probability against months. " + "; ".join(parts) + "." + bands


def survival_svg(panel: SurvivalPanel, chart_id: str) -> str:
    """One panel (PFS or OS) as an accessible inline <svg> element (no XML prologue)."""
    with rc_context({"svg.hashsalt": chart_id, "svg.fonttype": "none", "font.size": 11}):
        fig = Figure(figsize=(6.4, 4.6))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        for index, curve in enumerate(panel.curves):
            _step(ax, curve, ARM_COLOURS[index % len(ARM_COLOURS)], "-", band=True)
        for index, curve in enumerate(panel.reference):
            _step(ax, curve, REFERENCE_COLOUR, ["--", ":", "-."][index % 3], band=False)
        ax.set_xlabel("Months")
        ax.set_ylabel("Probability")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False, fontsize=8.5)
        ax.set_title(panel.title)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    # Size by CSS (responsive in a narrow iframe), name it for assistive technology.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    svg = svg.replace(
        "<svg",
        f'<svg id="{chart_id}" role="img" aria-labelledby="{title_id} {desc_id}" class="chart"',
        1,
    )
    head_end = svg.index(">", svg.index("<svg")) + 1
    accessible = (
        f'<title id="{title_id}">{escape(panel.title)}</title><desc id="{desc_id}">{escape(describe(panel))}</desc>'
    )
    return svg[:head_end] + accessible + svg[head_end:]


def table_rows(curve: Curve, every_months: float = 3.0) -> list[tuple[float, float, float | None, float | None]]:
    """(month, survival, low, high) at 0, 3, 6, … months: the step function read at each time."""
    rows = []
    if not curve.times:
        return rows
    month = 0.0
    index = 0
    while month <= curve.times[-1] + 1e-9:
        while index + 1 < len(curve.times) and curve.times[index + 1] <= month:
            index += 1
        low = curve.low[index] if curve.low else None
        high = curve.high[index] if curve.high else None
        rows.append((month, curve.survival[index], low, high))
        month += every_months
    return rows
