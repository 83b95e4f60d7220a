"""Prometheus metrics (``GET /metrics``) and structured JSON logs carrying a request id.

Call sites elsewhere use these functions and nothing else::

    observe_fetch("labs", ok=True)                      # one fallback FHIR fetch of a prefetch key
    observe_cards(service_id, ["warning", "info"])      # the indicators of the cards returned
    observe_assessment(service_id, "fast_path")         # what a hook call came to (audit outcome)
    observe_feedback(service_id, results)               # the fate of each entry of a feedback POST
    observe_database(up=False)                          # what a database call just found
    set_audit_queue_depth(12)                           # audit rows waiting in this worker
    observe_audit_dropped()                             # one audit row dropped (queue full)
    set_model_version("2025.1")                         # once, when the model artifacts are loaded
    expect_labels(service_ids, fetch_keys)              # once per app: counters shown at zero
    watch(app, service_ids, store.ping)                 # once per app: what labels and /metrics check

Requests answered 401 are counted by reason, and 503s for an unreachable database logged at
WARNING, here where every response passes (``_finish_request``).

Under gunicorn with several workers, metrics are shared through files in
``$PROMETHEUS_MULTIPROC_DIR`` (``python -m cds_service`` sets it up); prometheus_client is imported
lazily so that the variable is in place before it is first read. Logs never carry request bodies,
headers, query strings or tokens: ids, routes, statuses and timings only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from .settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")  # read without the headers proxy
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+=/-]{1,128}$")
_INDICATORS = {"info", "warning", "critical"}
ASSESSMENT_OUTCOMES = ("cards", "no_cards", "fast_path")
FEEDBACK_RESULTS = ("stored", "duplicate", "refused", "conflict")
_CONFLICTS = {"outcome_conflict", "feedback_conflict"}
# The 503s a view answers because the database is unreachable (feedback, JWT replay check).
DATABASE_UNAVAILABLE_ERRORS = {"store_unavailable", "replay_store_unavailable"}
# A 401's coarse reason, from the first words of its message (cds_service.auth.InvalidToken):
# never the token, never a claim's value. Checked in order; "other" if none matches.
AUTH_FAILURE_REASONS = (
    ("missing_token", ("An 'Authorization: Bearer",)),
    ("malformed", ("The bearer token", "JWT header typ", "JWT header kid", "JWT is not valid (")),
    ("algorithm", ("JWT alg",)),
    ("untrusted_issuer", ("JWT iss", "JWT header jku")),
    ("jwks_unavailable", ("The issuer's JWK Set",)),
    ("unknown_key", ("JWT kid", "JWT key")),
    ("signature", ("JWT signature",)),
    ("audience", ("JWT aud",)),
    ("expired", ("JWT has expired", "JWT is not valid yet", "JWT was issued more than")),
    ("replay", ("JWT jti was already used",)),
    ("claims", ("JWT claim", "JWT iat", "JWT jti")),
)

EXTENSION = "hcc_cds_observability"

access_log = logging.getLogger("cds_service.access")
security_log = logging.getLogger("cds_service.security")
bp = Blueprint("observability", __name__)


# -- metrics ----------------------------------------------------------------------------------


class _Metrics:
    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "cds_http_requests_total",
            "HTTP requests answered, by CDS service id, route and status code.",
            ["service_id", "endpoint", "status"],
        )
        # By status class, not code: a histogram is a dozen series per label set.
        self.latency = Histogram(
            "cds_http_request_duration_seconds",
            "Time to answer an HTTP request, by CDS service id, route and status class.",
            ["service_id", "endpoint", "status_class"],
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
        )
        self.assessments = Counter(
            "cds_assessments_total",
            "Hook calls answered, by CDS service id and outcome (cards, no_cards, fast_path).",
            ["service_id", "outcome"],
        )
        self.auth_failures = Counter(
            "cds_auth_failures_total", "Bearer JWTs refused (401), by coarse reason.", ["reason"]
        )
        self.feedback = Counter(
            "cds_feedback_entries_total",
            "Feedback entries received, by CDS service id and result (stored, duplicate, refused, conflict).",
            ["service_id", "result"],
        )
        self.database_up = Gauge(
            "cds_database_up",
            "1 if the last database call of any live worker succeeded, 0 if it found the database unreachable.",
            multiprocess_mode="livemostrecent",
        )
        self.audit_queue = Gauge(
            "cds_audit_queue_depth",
            "Audit rows waiting to be written, all live workers together.",
            multiprocess_mode="livesum",
        )
        self.audit_dropped = Counter(
            "cds_audit_records_dropped_total", "Audit rows dropped because the writer's queue was full."
        )
        self.fetches = Counter(
            "cds_fetch_fallbacks_total",
            "Fallback FHIR fetches of prefetch keys the EHR did not send, by key and result.",
            ["key", "result"],
        )
        self.cards = Counter(
            "cds_cards_total", "Cards returned, by CDS service id and indicator.", ["service_id", "indicator"]
        )
        self.model = Gauge("cds_model_info", "Model version in use (value 1).", ["version"], multiprocess_mode="max")
        self._request_children: dict[tuple[str, str, int], tuple] = {}
        self._assessment_children: dict[tuple[str, str], object] = {}
        self.audit_dropped.inc(0)
        for reason, _ in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason=reason)
        self.auth_failures.labels(reason="other")

    def request_children(self, service_id: str, endpoint: str, status: int) -> tuple:
        """The (counter, histogram) children of one label set. ``labels()`` checks and hashes its
        arguments on every call; the label sets are few (known services, routes, status codes)."""
        key = (service_id, endpoint, status)
        children = self._request_children.get(key)
        if children is None:
            where = dict(service_id=service_id, endpoint=endpoint)
            children = self._request_children[key] = (
                self.requests.labels(**where, status=str(status)),
                self.latency.labels(**where, status_class=f"{status // 100}xx"),
            )
        return children

    def assessment_child(self, service_id: str, outcome: str):
        """As ``request_children``: the fast path counts every irrelevant order."""
        key = (service_id, outcome)
        child = self._assessment_children.get(key)
        if child is None:
            child = self._assessment_children[key] = self.assessments.labels(service_id=service_id, outcome=outcome)
        return child


_metrics_instance: _Metrics | None = None
_metrics_lock = threading.Lock()


def _metrics() -> _Metrics:
    global _metrics_instance
    if _metrics_instance is None:
        with _metrics_lock:
            if _metrics_instance is None:
                _metrics_instance = _Metrics()
    return _metrics_instance


def observe_fetch(key: str, ok: bool) -> None:
    """Count one fallback fetch of prefetch ``key`` (a template key, never a URL)."""
    _metrics().fetches.labels(key=key, result="ok" if ok else "failed").inc()


def observe_cards(service_id: str, indicators: Iterable[str]) -> None:
    """Count the cards of one response by indicator (``info``/``warning``/``critical``)."""
    counter = _metrics().cards
    for indicator in indicators:
        counter.labels(service_id=service_id, indicator=indicator if indicator in _INDICATORS else "other").inc()


def observe_assessment(service_id: str, outcome: str) -> None:
    """Count one hook call by outcome: ``fast_path`` (nothing relevant ordered, not audited), or
    the audit row's ``cards``/``no_cards``."""
    _metrics().assessment_child(service_id, outcome).inc()


def observe_feedback(service_id: str, results: Iterable) -> None:
    """Count the entries of one feedback POST by result (``cds_service.store.FeedbackResult``):
    stored, duplicate, refused (card or suggestion never issued) or conflict."""
    counter = _metrics().feedback
    for result in results:
        kind = "conflict" if result.error in _CONFLICTS else result.status
        counter.labels(service_id=service_id, result=kind).inc()


def observe_database(up: bool) -> None:
    _metrics().database_up.set(1 if up else 0)


def set_audit_queue_depth(depth: int) -> None:
    _metrics().audit_queue.set(depth)


def observe_audit_dropped() -> None:
    _metrics().audit_dropped.inc()


def set_model_version(version: str) -> None:
    _metrics().model.labels(version=version).set(1)


def expect_labels(service_ids: Iterable[str], fetch_keys: Iterable[str]) -> None:
    """Create the counters of the known label values at zero, so that a dashboard or an alert's
    ``rate()`` sees them before the first event (a series that appears at its first increment
    has no earlier sample to compare with: its first failures never show as a rise)."""
    m = _metrics()
    for service_id in service_ids:
        for outcome in ASSESSMENT_OUTCOMES:
            m.assessment_child(service_id, outcome)
        for result in FEEDBACK_RESULTS:
            m.feedback.labels(service_id=service_id, result=result)
        for indicator in sorted(_INDICATORS):
            m.cards.labels(service_id=service_id, indicator=indicator)
    for key in [*fetch_keys, "Medication"]:
        for result in ("ok", "failed"):
            m.fetches.labels(key=key, result=result)


@dataclass(frozen=True)
class _Watched:
    service_ids: frozenset[str]
    database_ping: Callable[[], bool]


def watch(app: Flask, service_ids: Iterable[str], database_ping: Callable[[], bool]) -> None:
    """The service ids a request may be labelled with, and how a scrape checks the database:
    handed in by the app factory, so that this module imports nothing of the app above it."""
    app.extensions[EXTENSION] = _Watched(frozenset(service_ids), database_ping)


def auth_failure_reason(message: str) -> str:
    for reason, beginnings in AUTH_FAILURE_REASONS:
        if message.startswith(beginnings):
            return reason
    return "other"


@bp.get("/metrics")
def metrics():
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _metrics()  # the metric families exist (at zero) before the first request that counts
    _check_database()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _check_database() -> None:
    """``cds_database_up`` as of this scrape, not only as of the last call that needed the database."""
    watched = current_app.extensions.get(EXTENSION)
    if watched is not None:
        observe_database(watched.database_ping())


# -- request id, timing, access log -----------------------------------------------------------


def current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


@bp.before_app_request
def _start_request() -> None:
    incoming = request.environ.get(_REQUEST_ID_ENVIRON, "")
    g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


@bp.after_app_request
def _finish_request(response: Response) -> Response:
    # On every call, the fast path included: the request and g are read through their proxies
    # once (each proxy read has a cost: bench/README.md).
    req, ctx = cast(LocalProxy, request)._get_current_object(), g._get_current_object()
    request_id = ctx.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - ctx.get("request_started", time.perf_counter())
    endpoint = req.url_rule.rule if req.url_rule is not None else "unmatched"
    service_id = _service_label((req.view_args or {}).get("service_id"))
    status = response.status_code
    if endpoint != "/metrics":
        count, latency = _metrics().request_children(service_id, endpoint, status)
        count.inc()
        latency.observe(elapsed)
    if status in (401, 503):
        _refused(req, response, endpoint)
    if not access_log.isEnabledFor(logging.INFO):
        return response
    access_log.info(
        "request",
        extra={
            "method": req.method,
            "path": req.path,  # no query string: FHIR-ish queries may carry identifiers
            "endpoint": endpoint,
            "service_id": service_id,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 1),
        },
    )
    return response


def _refused(req, response: Response, endpoint: str) -> None:
    """A 401: counted by reason and logged as an event. A 503 because the database is
    unreachable: logged at WARNING, and ``cds_database_up`` is 0."""
    body = response.get_json(silent=True) if response.is_json else None
    body = body if isinstance(body, dict) else {}
    if response.status_code == 401:
        reason = auth_failure_reason(str(body.get("message", "")))
        _metrics().auth_failures.labels(reason=reason).inc()
        security_log.warning(
            "bearer token refused", extra={"event": "auth_failure", "reason": reason, "endpoint": endpoint}
        )
    elif body.get("error") in DATABASE_UNAVAILABLE_ERRORS:
        observe_database(up=False)
        access_log.warning(
            "answered 503: database unavailable",
            extra={"event": "database_unavailable", "error": body["error"], "method": req.method, "endpoint": endpoint},
        )


def _service_label(service_id: str | None) -> str:
    if service_id is None:
        return "-"
    watched = current_app.extensions.get(EXTENSION)
    return service_id if watched is not None and service_id in watched.service_ids else "unknown"


# -- JSON logs ---------------------------------------------------------------------------------

_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRETS = [
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (re.compile(r"(?i)(access_token|password|secret)([\"']?\s*[:=]\s*[\"']?)[^\s\"',&]+"), r"\1\2[redacted]"),
    (re.compile(r"(?i)(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
]
# Every pattern above needs one of these words (case-insensitive): one search clears most texts.
_SECRET_HINT = re.compile(r"(?i)bearer|eyJ|access_token|password|secret|postgres")


def scrub(text: str) -> str:
    """Remove bearer tokens, JWTs, passwords and database credentials from a log text."""
    if not _SECRET_HINT.search(text):
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and key not in entry:
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class JsonHandler(logging.StreamHandler):
    """Marker class: configure_logging replaces its own handler, never anyone else's."""


def configure_logging(level: str | int = "INFO") -> None:
    """JSON lines on stderr for the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, JsonHandler)]:
        root.removeHandler(handler)
    handler = JsonHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    # The development server's request lines carry query strings; our access log replaces them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def init_app(app: Flask, settings: Settings) -> None:
    configure_logging(settings.log_level)
    app.register_blueprint(bp)
