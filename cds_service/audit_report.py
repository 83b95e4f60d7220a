"""``python -m cds_service audit-report``: the audit log and the feedback, summed up for governance.

Text for a reader, ``--json`` for a spreadsheet or dashboard; ``--by-model-version`` adds the
figures of each model version, to compare a version rolled out with the one before.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta

from .settings import Settings
from .store import AuditReport


def run(settings: Settings, since: date | None, until: date | None, by_model_version: bool, as_json: bool) -> int:
    """``since``, ``until``: the first and the last day (UTC) to include. Exit status 2 when the
    database cannot be read or its schema is not migrated."""
    from sqlalchemy.exc import SQLAlchemyError

    from .store import SchemaOutdated, Store

    end = until + timedelta(days=1) if until is not None else None  # the report's end is exclusive
    try:
        store = Store(settings.database_url, schema="check", statement_timeout=False)
        report = store.reports.audit_report(since, end, by_model_version=by_model_version)
    except SchemaOutdated as exc:
        print(f"audit-report: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # The driver's own words: no URL (with its password), no SQL.
        original = getattr(exc, "orig", None)
        reason = str(original if original is not None else exc).strip()
        print(f"audit-report: cannot read the database: {reason}", file=sys.stderr)
        return 2
    print(report.model_dump_json(indent=2) if as_json else format_audit_report(report))
    return 0


def format_audit_report(report: AuditReport) -> str:
    first = report.since.date() if report.since else "the beginning"
    last = f" up to {(report.until - timedelta(days=1)).date()}" if report.until else ""
    lines = [f"Assessments since {first}{last}: {report.assessments}"]
    lines += ["", "By service and outcome (hook calls on the fast path are not audited: see cds_assessments_total):"]
    for service_id, outcomes in report.by_service_outcome.items():
        lines.append(f"  {service_id}: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()))
    lines += [
        "",
        "Cards by indicator: " + (", ".join(f"{k} {v}" for k, v in report.cards_by_indicator.items()) or "none"),
    ]
    lines += ["", "Timing (ms):"]
    for key, timing in report.timing.items():
        label = "all services" if key == "*" else key
        lines.append(f"  {label}: n={timing.count} p50={timing.p50_ms:.0f} p95={timing.p95_ms:.0f}")
    lines += ["", "Missing data (item: assessments it was missing from):"]
    lines += [f"  {item}: {count}" for item, count in report.missing_data.items()] or ["  none"]
    lines += ["", "Feedback per card (service / kind / indicator): shown, accepted, overridden"]
    for rate in report.card_feedback:
        lines.append(
            f"  {rate.service_id} / {rate.kind or '-'} / {rate.indicator}: {rate.shown}, "
            f"{rate.accepted} ({rate.acceptance_rate:.0%}), {rate.overridden} ({rate.override_rate:.0%})"
        )
    lines += ["", "Override reasons (kind: code display × count):"]
    for reason in report.override_reasons:
        lines.append(
            f"  {reason.kind or '-'}: {reason.reason_code or '(none)'} {reason.reason_display or ''} × {reason.count}"
        )
    if report.by_model_version is not None:
        lines += ["", "By model version: assessments (outcomes), p50/p95 ms, cards shown, accepted, overridden"]
        for version, figures in report.by_model_version.items():
            by_outcome = ", ".join(f"{k} {v}" for k, v in figures.by_outcome.items())
            lines.append(
                f"  {version}: {figures.assessments} ({by_outcome}), "
                f"{figures.timing.p50_ms:.0f}/{figures.timing.p95_ms:.0f} ms, {figures.cards_shown}, "
                f"{figures.accepted} ({figures.acceptance_rate:.0%}), "
                f"{figures.overridden} ({figures.override_rate:.0%})"
            )
    return "\n".join(lines)
