"""The monitoring report's three outputs: ``report.json`` (every figure), ``report.html`` (one
self-contained page for a clinical lead: alerts first, each figure explained, SVG charts inline)
and Prometheus gauges for the alert figures (a textfile-collector ``monitor.prom``, and pushed to
a Pushgateway when one is given)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from ..svg_plot import Series, render_svg
from .figures import ENDPOINTS, SUBGROUP_LABELS, Alert, MonitorReport, SurvivalFigures

PROM_FILE = "monitor.prom"
PUSH_JOB = "hcc_cds_monitor"
OBSERVED = "#1f5fa8"
PREDICTED = "#b5452b"
REFERENCE = "#555555"


def write_json(report: MonitorReport, out: Path) -> Path:
    path = out / "report.json"
    path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return path


# -- Prometheus ----------------------------------------------------------------------------------


def _gauge_value(value: float | None) -> float:
    """NaN for an unknown figure, Prometheus's convention."""
    return value if value is not None and math.isfinite(value) else math.nan


def gauges(report: MonitorReport):  # -> CollectorRegistry (prometheus_client is imported late)
    """A registry of its own (not the service's process-wide one) holding the run's gauges."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    alert = Gauge("cds_monitor_alert", "1 when the check's alert tripped", ["check"], registry=registry)
    judged = Gauge("cds_monitor_judged", "1 when enough patients to judge the check", ["check"], registry=registry)
    figure = Gauge("cds_monitor_figure", "The check's figure (NaN: unknown)", ["check"], registry=registry)
    threshold = Gauge("cds_monitor_threshold", "The check's threshold (CDS_MONITOR_*)", ["check"], registry=registry)
    patients = Gauge("cds_monitor_patients", "Patients behind the check's figure", ["check"], registry=registry)
    for item in report.alerts:
        alert.labels(item.check).set(int(item.tripped))
        judged.labels(item.check).set(int(item.judged))
        figure.labels(item.check).set(_gauge_value(item.value))
        threshold.labels(item.check).set(item.threshold)
        patients.labels(item.check).set(item.n)
    Gauge("cds_monitor_alerts_tripped", "Alerts tripped in the run", registry=registry).set(len(report.tripped))
    Gauge("cds_monitor_last_run_timestamp_seconds", "When the run finished", registry=registry).set(
        report.generated_at.timestamp()
    )
    return registry


def write_prometheus(report: MonitorReport, out: Path, pushgateway: str | None) -> Path:
    """Always the textfile; pushed too when ``pushgateway`` is given (an error propagates)."""
    from prometheus_client import push_to_gateway, write_to_textfile

    registry = gauges(report)
    path = out / PROM_FILE
    write_to_textfile(str(path), registry)
    if pushgateway:
        push_to_gateway(pushgateway, job=PUSH_JOB, registry=registry, timeout=30)
    return path


# -- HTML ----------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _ci(estimate, percent: bool = False) -> str:
    show = _pct if percent else _num
    if estimate.estimate is None:
        return "not computable"
    if estimate.low is None:
        return show(estimate.estimate)
    return f"{show(estimate.estimate)} ({show(estimate.low)} to {show(estimate.high)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _alerts_section(report: MonitorReport) -> str:
    tripped = report.tripped
    if tripped:
        lead = (
            f"<p class='alert'><strong>{len(tripped)} alert(s) tripped.</strong> Review with the model's owner before "
            "relying on the cards.</p>"
        )
    else:
        lead = "<p class='ok'><strong>No alert tripped.</strong></p>"
    rows = [
        [
            a.title,
            _num(a.value),
            f"{a.threshold:g} ({a.setting})",
            str(a.n),
            "ALERT" if a.tripped else ("ok" if a.judged else "too few patients to judge"),
            a.rule,
        ]
        for a in sorted(report.alerts, key=lambda a: (not a.tripped, a.check))
    ]
    return (
        "<h2>Alerts</h2>"
        + lead
        + "<p>An alert trips when a figure crosses its threshold and chance is an unlikely explanation (the rule "
        "column). Thresholds are this hospital's policy, set in the service's settings, not published evidence.</p>"
        + _table(["Check", "Figure", "Threshold", "Patients", "Status", "Rule"], rows)
    )


def _calibration_chart(report: MonitorReport) -> str:
    resistance = report.resistance
    if resistance is None or not resistance.curve:
        return ""
    curve = resistance.curve
    observed = Series(
        label="observed share (95% CI)",
        x=[g.predicted for g in curve],
        y=[g.observed.estimate or 0.0 for g in curve],
        low=[g.observed.low or 0.0 for g in curve],
        high=[g.observed.high or 0.0 for g in curve],
        colour=OBSERVED,
        kind="line",
    )
    ideal = Series(label="perfect calibration", x=[0.0, 1.0], y=[0.0, 1.0], colour=REFERENCE, dashed=True)
    return render_svg(
        [ideal, observed],
        title="Primary resistance: predicted vs observed",
        description="Observed share of patients with primary resistance against the predicted probability, "
        "one point per group of patients with the same prediction, with its 95% confidence band; the dashed "
        "diagonal is perfect calibration.",
        x_label="predicted probability",
        y_label="observed share",
        x_range=(0.0, 1.0),
        element_id="calibration",
    )


def _resistance_section(report: MonitorReport) -> str:
    r = report.resistance
    intro = (
        "<h2>First line: primary resistance to sorafenib</h2>"
        "<p>Each patient's first estimate of the probability of progressing within 3 months of starting "
        "sorafenib, against what the record now shows.</p>"
    )
    if r is None:
        return intro + "<p>No patient with a known outcome yet.</p>" + _unknown(report)
    rows = [
        ["Patients with a known outcome", str(r.n), "Patients whose 3-month outcome is in the record."],
        ["Primary resistance observed", f"{r.events} ({_ci(r.observed_rate, True)})", "Share with 95% CI."],
        ["Mean predicted probability", _pct(r.mean_predicted), "Should be close to the observed share."],
        ["Observed / expected", _num(r.observed_expected_ratio), "1 = as many as predicted; 2 = twice as many."],
        [
            "Calibration intercept",
            _ci(r.calibration_intercept),
            "0 = right on average; above 0 = resistance more common than predicted (log-odds).",
        ],
        [
            "Calibration slope",
            _ci(r.calibration_slope),
            "1 = risks spread as they should; below 1 = predictions too extreme.",
        ],
        ["AUC", _ci(r.auc), "Chance a resistant patient was given the higher risk; 0.5 = no better than chance."],
        ["Brier score", _num(r.brier, 3), "Mean squared error of the probabilities; lower is better."],
    ]
    return (
        intro
        + _table(["Figure", "Value (95% CI)", "What it means"], rows)
        + _calibration_chart(report)
        + _unknown(report)
    )


def _unknown(report: MonitorReport) -> str:
    if not report.unknown_outcomes:
        return ""
    rows = [[reason, str(n)] for reason, n in report.unknown_outcomes.items()]
    return "<h3>Assessments left out (outcome not known yet)</h3>" + _table(["Reason", "Count"], rows)


def _survival_chart(figures: SurvivalFigures) -> str:
    observed = Series(
        label="observed (Kaplan-Meier, 95% CI)",
        x=figures.observed.times,
        y=figures.observed.survival,
        low=figures.observed.low,
        high=figures.observed.high,
        colour=OBSERVED,
        kind="step",
    )
    points = [c for c in figures.checks if c.predicted is not None]
    series = [observed]
    if points:
        series.append(
            Series(
                label="mean predicted",
                x=[c.months for c in points],
                y=[c.predicted or 0.0 for c in points],
                colour=PREDICTED,
                kind="points",
            )
        )
    name = ENDPOINTS[figures.endpoint]
    return render_svg(
        series,
        title=f"Second line: {name}",
        description=f"Observed {name} after the second-line start (Kaplan-Meier with 95% band) and the mean "
        f"predicted survival at {', '.join(f'{c.months:g}' for c in points)} months.",
        x_label="months from second-line start",
        y_label="survival",
        x_range=(0.0, max(12.0, figures.follow_up_months)),
        element_id=f"survival-{figures.endpoint}",
    )


def _survival_section(report: MonitorReport) -> str:
    out = [
        "<h2>Second line: survival after sorafenib failure</h2>",
        "<p>The survival each patient was predicted for the regimen they actually started, averaged, against the "
        "survival observed (Kaplan-Meier, which counts patients still alive or progression-free at their last "
        "contact for as long as they were followed).</p>",
    ]
    if not report.survival:
        return "".join(out) + "<p>No second-line patient with a recorded second-line start yet.</p>"
    for endpoint, figures in report.survival.items():
        rows = [
            [
                f"{c.months:g} months",
                _ci(c.observed, True),
                _pct(c.predicted),
                "–" if c.difference is None else f"{100 * c.difference:+.0f} points",
            ]
            for c in figures.checks
        ]
        out.append(
            f"<h3>{escape(ENDPOINTS[endpoint].capitalize())}: {figures.n} patients, {figures.events} events</h3>"
        )
        out.append(_table(["Time", "Observed (95% CI)", "Predicted", "Observed - predicted"], rows))
        out.append(_survival_chart(figures))
    return "".join(out)


def _subgroup_section(report: MonitorReport) -> str:
    rows = []
    for s in report.subgroups:
        r = s.resistance
        six = {e: next((c for c in checks if c.months == 6), None) for e, checks in s.survival.items()}
        rows.append(
            [
                SUBGROUP_LABELS[s.attribute],
                s.value,
                str(r.n) if r else "0",
                _pct(r.observed_rate.estimate) if r else "–",
                _pct(r.mean_predicted) if r else "–",
                _num(r.auc.estimate) if r else "–",
                *(
                    (f"{_pct(c.observed.estimate)} vs {_pct(c.predicted)}" if (c := six.get(e)) is not None else "–")
                    for e in ENDPOINTS
                ),
            ]
        )
    return (
        "<h2>By subgroup</h2><p>The same figures by patient group, read from the record at the treatment start. "
        "Groups are small: look for a group far from the rest, not for alerts (none are raised here).</p>"
        + _table(
            [
                "Subgroup",
                "Group",
                "First-line patients",
                "Resistance observed",
                "Predicted",
                "AUC",
                "PFS at 6 months (observed vs predicted)",
                "OS at 6 months (observed vs predicted)",
            ],
            rows,
        )
    )


def _drift_section(report: MonitorReport) -> str:
    d = report.drift
    rows = [
        ["AFP > 400 ng/mL", _ci(d.afp_share, True), _pct(d.reference_afp_share)],
        ["ALT > 40 U/L", _ci(d.alt_share, True), _pct(d.reference_alt_share)],
        ["Population stability index", _num(d.psi, 3), "0 (identical)"],
    ]
    chart = ""
    if d.by_month:
        x = list(range(len(d.by_month)))
        months = ", ".join(p.month for p in d.by_month)
        series = []
        for label, colour, monthly, reference in (
            ("AFP > 400", OBSERVED, [p.afp_share.estimate for p in d.by_month], d.reference_afp_share),
            ("ALT > 40", PREDICTED, [p.alt_share.estimate for p in d.by_month], d.reference_alt_share),
        ):
            series.append(Series(label=f"{label} share", x=x, y=[v or 0.0 for v in monthly], colour=colour))
            series.append(
                Series(
                    label=f"{label}, training",
                    x=[0, max(1, len(x) - 1)],
                    y=[reference] * 2,
                    colour=colour,
                    dashed=True,
                )
            )
        chart = render_svg(
            series,
            title="Input drift by month",
            description=f"Share of assessed patients with AFP > 400 ng/mL and with ALT > 40 U/L per month ({months}), "
            "with the training cohort's shares dashed.",
            x_label=f"month (0 = {d.by_month[0].month})",
            y_label="share of patients",
            element_id="drift",
        )
    return (
        "<h2>Input drift</h2>"
        f"<p>Are today's patients like the ones the model learnt from? {d.n} first-line patients with both markers "
        f"({d.missing_markers} with a marker missing are left out). Reference: {escape(d.reference)}, "
        f"n = {d.reference_n}. The population stability index sums the change over the four AFP/ALT combinations: "
        "below 0.1 is usually read as stable, above 0.25 as a major shift.</p>"
        + _table(["Input", "This period (95% CI)", "Training cohort"], rows)
        + chart
    )


def _feedback_section(report: MonitorReport) -> str:
    rows = [
        [
            f"{f['service_id']} / {f.get('kind') or '-'} / {f['indicator']}",
            str(f["shown"]),
            f"{f['accepted']} ({_pct(f['accepted'] / f['shown'] if f['shown'] else 0.0)})",
            f"{f['overridden']} ({_pct(f['overridden'] / f['shown'] if f['shown'] else 0.0)})",
        ]
        for f in report.feedback.card_feedback
    ]
    reasons = [
        [r.get("kind") or "-", r.get("reason_code") or "(none)", r.get("reason_display") or "", str(r["count"])]
        for r in report.feedback.override_reasons
    ]
    return (
        "<h2>How clinicians used the cards</h2><p>Cards shown, accepted and overridden, by card kind (from the "
        "feedback the EHR sends), and the reasons given for overriding.</p>"
        + _table(["Service / card kind / indicator", "Shown", "Accepted", "Overridden"], rows)
        + (_table(["Card kind", "Reason code", "Reason", "Count"], reasons) if reasons else "<p>No override.</p>")
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
    "vertical-align:top}th{background:#f2f2f2}.alert{color:#a00}.ok{color:#060}svg{display:block;margin:1em 0}"
)


def render_html(report: MonitorReport) -> str:
    period = (
        f"{report.since.date() if report.since else 'the first audited assessment'} to "
        f"{report.until.date() if report.until else 'now'}"
    )
    versions = ", ".join(f"{v} ({n})" for v, n in report.model_versions.items()) or "none"
    counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in report.assessments.items()) or "none"
    summary = (
        f"<p>Assessments from {escape(period)}: {escape(counts)}. Model version(s): {escape(versions)}. "
        f"Patients matched in the FHIR server ({escape(report.fhir_server)}, candidates from "
        f"{escape(report.patient_source)}): {report.matched_patients}; not found: {report.unmatched_patients}; "
        f"record unreadable: {report.unreadable_patients}. Generated {report.generated_at:%Y-%m-%d %H:%M} UTC. "
        "This page holds no patient identifier.</p>"
    )
    body = (
        "<h1>Sorafenib CDS: did the predictions come true?</h1>"
        + summary
        + _alerts_section(report)
        + _resistance_section(report)
        + _survival_section(report)
        + _subgroup_section(report)
        + _drift_section(report)
        + _feedback_section(report)
        + "<h2>Methods</h2><p>Calibration intercept and slope: logistic recalibration on the model's log-odds. "
        "AUC: DeLong's confidence interval. Survival: Kaplan-Meier with Greenwood's variance (log-log band); "
        "patients are censored at their last contact. Shares: Wilson intervals. Evidence: Lei et al. 2025, "
        "doi:10.1177/17588359241299678. See docs/monitoring.md.</p>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>HCC CDS monitoring report</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def write_html(report: MonitorReport, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def alert_lines(alerts: list[Alert]) -> list[str]:
    return [f"ALERT {a.check}: {_num(a.value)} (threshold {a.threshold:g}, {a.setting}; n={a.n})" for a in alerts]
