"""``python -m cds_service monitor``: did the predictions come true? (docs/monitoring.md)

Reads the audit log of the period, finds each audited patient on the FHIR server by digest
(``patients``), reads what happened since, computes the figures and alerts (``figures``) and
writes ``report.json``, ``report.html`` and ``monitor.prom`` (``report``).

Exit status: 0 no alert tripped; 1 at least one alert tripped (the report says which);
2 a configuration or usage problem (nothing read); 3 the run could not finish (database or FHIR
server unreadable, Pushgateway refused the push).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from fhir_mappers.terminology import load_terminology
from models._progress import progress
from models.registry import load_bundle

from ..fhir_client import FhirClient
from ..patient_key import PatientKeyer
from ..settings import Settings
from ..ssrf import FhirServerPolicy, FhirServerRefused
from ..store import AuditedAssessment, SchemaOutdated, Store, StoreUnavailable
from .figures import (
    DriftObservation,
    FeedbackFigures,
    FirstLineObservation,
    Observations,
    SecondLineObservation,
    build_report,
    predicted_survival,
)
from .patients import (
    MonitorReadError,
    PatientOutcome,
    RecordReader,
    candidates_from_file,
    candidates_from_server,
    match_digests,
)
from .report import alert_lines, write_html, write_json, write_prometheus

EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorOptions:
    fhir_server: str
    since: date | None = None
    until: date | None = None  # last day included
    out: Path = Path("monitor-report")
    patients: Path | None = None
    pushgateway: str | None = None
    token_file: Path | None = None


def _day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day is not None else None


def run(settings: Settings, options: MonitorOptions) -> int:
    """The whole job; messages go to stderr, never a patient id."""
    base = options.fhir_server.rstrip("/")
    policy = FhirServerPolicy.from_settings(settings)
    try:
        policy.check_url(base)
    except FhirServerRefused as exc:
        return _fail(EXIT_USAGE, f"--fhir-server refused: {exc.reason}")
    if options.patients is not None and not options.patients.is_file():
        return _fail(EXIT_USAGE, f"--patients {options.patients}: no such file")
    try:
        token = options.token_file.read_text(encoding="utf-8").strip() if options.token_file else None
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(EXIT_USAGE, f"{exc.filename}: {exc.strerror}")
    since = _day_start(options.since)
    until = _day_start(options.until + timedelta(days=1)) if options.until else None
    client = FhirClient(
        max_bytes=settings.fetch_max_bytes,
        max_pages=settings.fetch_max_pages,
        workers=settings.fetch_workers,
        policy=policy,
        ca_bundle=settings.ca_bundle,
    )
    keyer = PatientKeyer.from_settings(settings).for_server(base)
    try:
        store = Store(settings.database_url, schema="check", statement_timeout=False)
        audited = list(store.audit.assessments(since, until))
        feedback = store.reports.audit_report(since, until)
    except (SQLAlchemyError, SchemaOutdated, StoreUnavailable) as exc:  # the driver's words, never the URL
        return _fail(EXIT_FAILED, f"cannot read the audit log: {_database_reason(exc)}")

    wanted: set[tuple[str, str]] = {
        (row.patient_key_id, row.patient_digest)
        for row in audited
        if row.scenario in ("first_line", "second_line") and row.patient_key_id and row.patient_digest
    }
    try:
        candidates = (
            candidates_from_file(options.patients)
            if options.patients
            else candidates_from_server(client, base, token, policy)
        )
        matched = match_digests(keyer, wanted, candidates)
    except (MonitorReadError, OSError) as exc:
        return _fail(EXIT_FAILED, str(exc))

    reader = RecordReader(
        client,
        base,
        token,
        policy,
        load_terminology(settings.terminology_path),
        settings.lab_lookback_days,
        settings.imaging_lookback_days,
        settings.labs_prefetch,
    )
    observations, unreadable = _observe(audited, matched, reader)
    bundle = load_bundle(settings.model_dir)

    report = build_report(
        observations,
        bundle.artifact,
        settings,
        generated_at=datetime.now(UTC),
        since=since,
        until=until,
        fhir_server=base,
        patient_source=str(options.patients.name) if options.patients else "the FHIR server's Patient search",
        model_versions=dict(Counter(row.model_version or "(unknown)" for row in audited).most_common()),
        assessments=dict(Counter(row.scenario or "(none)" for row in audited).most_common()),
        matched_patients=len(set(matched.values())),
        unmatched_patients=len(wanted) - len(matched),
        unreadable_patients=unreadable,
        feedback=FeedbackFigures(
            card_feedback=[rate.model_dump() for rate in feedback.card_feedback],
            override_reasons=[reason.model_dump() for reason in feedback.override_reasons],
        ),
    )
    write_json(report, options.out)
    write_html(report, options.out)
    try:
        write_prometheus(report, options.out, options.pushgateway)
    except OSError as exc:
        return _fail(EXIT_FAILED, f"the Pushgateway push failed: {exc}")
    for line in alert_lines(report.tripped):
        print(line, file=sys.stderr)
    print(f"monitor: report written to {options.out}; {len(report.tripped)} alert(s) tripped", file=sys.stderr)
    return EXIT_ALERT if report.tripped else EXIT_OK


def _observe(
    audited: list[AuditedAssessment], matched: dict[tuple[str, str], str], reader: RecordReader
) -> tuple[Observations, int]:
    """Each matched patient's earliest first-line and second-line estimate, with what happened;
    drift from every first-line patient's earliest inputs. Patient ids stay in this function."""
    observations = Observations()
    first: dict[tuple[str | None, str | None] | str, AuditedAssessment] = {}
    second: dict[tuple[str | None, str | None] | str, AuditedAssessment] = {}
    for row in audited:  # oldest first: the first row seen is the earliest estimate
        who: tuple[str | None, str | None] | str = (
            (row.patient_key_id, row.patient_digest) if row.patient_digest else row.hook_instance
        )
        if row.scenario == "first_line" and who not in first:
            first[who] = row
            markers = (row.inputs.get("markers") or {}) if isinstance(row.inputs, dict) else {}
            afp, alt = markers.get("afp_over_400"), markers.get("alt_over_40")
            if isinstance(afp, bool) and isinstance(alt, bool):
                observations.drift.append(DriftObservation(row.recorded_at.strftime("%Y-%m"), (afp, alt)))
            else:
                observations.drift_missing_markers += 1
        elif row.scenario == "second_line" and who not in second:
            second[who] = row
    by_patient: dict[str, list[AuditedAssessment]] = {}
    for who, row in [*first.items(), *second.items()]:
        if not isinstance(who, tuple):
            observations.unknown_outcomes["no patient digest (audited before the digest was kept)"] += 1
            continue
        patient_id = matched.get(who)  # type: ignore[arg-type]
        if patient_id is None:
            observations.unknown_outcomes["patient not found on the FHIR server"] += 1
            continue
        by_patient.setdefault(patient_id, []).append(row)
    unreadable = 0
    for patient_id, rows in progress(by_patient.items(), "reading outcomes"):
        resources = reader.resources(patient_id)
        if resources is None:
            unreadable += 1
            observations.unknown_outcomes["record could not be read"] += len(rows)
            continue
        outcome = reader.outcome(resources, min(r.recorded_at for r in rows).date())
        for row in rows:
            _add(observations, row, outcome)
    return observations, unreadable


def _add(observations: Observations, row: AuditedAssessment, outcome: PatientOutcome) -> None:
    if row.scenario == "first_line":
        if row.resistance_probability is None:
            observations.unknown_outcomes["no estimate (a marker was missing or out of scope)"] += 1
        elif outcome.first_line.primary_resistance is None:
            observations.unknown_outcomes[outcome.first_line.unknown_because or "unknown"] += 1
        else:
            observations.first_line.append(
                FirstLineObservation(
                    predicted=row.resistance_probability,
                    primary_resistance=outcome.first_line.primary_resistance,
                    subgroups=asdict(outcome.at_first_line),
                )
            )
        return
    if not row.survival:
        observations.unknown_outcomes["no second-line estimate (out of scope)"] += 1
    elif outcome.second_line is None:
        observations.unknown_outcomes["no second-line start recorded yet"] += 1
    else:
        observations.second_line.append(
            SecondLineObservation(
                outcome=outcome.second_line,
                predicted=predicted_survival(row.survival, outcome.second_line.regimen),
                subgroups=asdict(outcome.at_second_line),
            )
        )


def _database_reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _fail(code: int, message: str) -> int:
    print(f"monitor: {message}", file=sys.stderr)
    return code
