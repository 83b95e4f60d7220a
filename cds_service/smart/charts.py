"""Survival curves as inline SVG, drawn on the server by ``cds_service.svg_plot``.

No JavaScript and nothing fetched at run time, so the chart renders inside an EHR iframe on a
closed network. Each SVG carries ``role="img"``, a ``<title>`` and a ``<desc>``; the page puts a
table with the same numbers beside it.
"""

from __future__ import annotations

from cards import app_text

from ..svg_plot import Series, render_svg
from .assessment import Curve, SurvivalPanel

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies, and > 4.5:1
# against white for the lines' labels.
ARM_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
REFERENCE_COLOUR = "#555555"
# Dashed, dotted, dash-dot: reference curves differ by pattern, not colour.
REFERENCE_DASHES = ["6 4", "2 3", "6 3 2 3"]


def describe(panel: SurvivalPanel) -> str:
    """In the current language (``cards.i18n.using``), as the panel's labels are."""
    medians = [app_text.curve_median(curve.label, curve.median_months) for curve in panel.curves + panel.reference]
    return app_text.chart_description(panel.title, medians, bands=any(c.low for c in panel.curves))


def survival_svg(panel: SurvivalPanel, chart_id: str) -> str:
    """One panel (PFS or OS) as an accessible inline <svg> element, sized by CSS (class ``chart``)."""
    series = [
        Series(
            curve.label,
            curve.times,
            curve.survival,
            ARM_COLOURS[index % len(ARM_COLOURS)],
            kind="step",
            low=curve.low if curve.low and curve.high else None,
            high=curve.high if curve.low and curve.high else None,
        )
        for index, curve in enumerate(panel.curves)
    ] + [
        Series(
            curve.label,
            curve.times,
            curve.survival,
            REFERENCE_COLOUR,
            kind="step",
            dashed=True,
            dash_pattern=REFERENCE_DASHES[index % len(REFERENCE_DASHES)],
        )
        for index, curve in enumerate(panel.reference)
    ]
    last_month = max((t for curve in panel.curves + panel.reference for t in curve.times), default=0.0)
    x_label, y_label = app_text.axis_labels()
    return render_svg(
        series,
        title=panel.title,
        description=describe(panel),
        x_label=x_label,
        y_label=y_label,
        x_range=(0.0, last_month) if last_month > 0 else None,
        y_range=(0.0, 1.02),
        width=640,
        height=420,
        element_id=chart_id,
        responsive=True,
        css_class="chart",
    )


def table_rows(curve: Curve, every_months: float = 3.0) -> list[tuple[float, float, float | None, float | None]]:
    """(month, survival, low, high) at 0, 3, 6, … months: the step function read at each time."""
    rows: list[tuple[float, float, float | None, float | None]] = []
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
