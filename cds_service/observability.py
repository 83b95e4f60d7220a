"""Prometheus metrics (``GET /metrics``) and structured JSON logs carrying a request id.

Call sites elsewhere use three functions and nothing else::

    observe_fetch("labs", ok=True)                      # one fallback FHIR fetch of a prefetch key
    observe_cards(service_id, ["warning", "info"])      # the indicators of the cards returned
    set_model_version("2025.1")                         # once, when the model artifacts are loaded

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
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request

if TYPE_CHECKING:
    from .settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")  # read without the headers proxy
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+=/-]{1,128}$")
_INDICATORS = {"info", "warning", "critical"}

access_log = logging.getLogger("cds_service.access")
bp = Blueprint("observability", __name__)


# -- metrics ----------------------------------------------------------------------------------


class _Metrics:
    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "cds_http_requests_total",
            "HTTP requests answered, by CDS service id, route and status class.",
            ["service_id", "endpoint", "status_class"],
        )
        self.latency = Histogram(
            "cds_http_request_duration_seconds",
            "Time to answer an HTTP request, by CDS service id, route and status class.",
            ["service_id", "endpoint", "status_class"],
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
        )
        self.fetches = Counter(
            "cds_fetch_fallbacks_total",
            "Fallback FHIR fetches of prefetch keys the EHR did not send, by key and result.",
            ["key", "result"],
        )
        self.cards = Counter(
            "cds_cards_total", "Cards returned, by CDS service id and indicator.", ["service_id", "indicator"]
        )
        self.model = Gauge(
            "cds_model_info", "Model version in use (value 1).", ["version"], multiprocess_mode="max"
        )
        self._request_children: dict[tuple[str, str, str], tuple] = {}

    def request_children(self, service_id: str, endpoint: str, status_class: str) -> tuple:
        """The (counter, histogram) children of one label set. ``labels()`` checks and hashes its
        arguments on every call; the label sets are few (known services, routes, status classes)."""
        key = (service_id, endpoint, status_class)
        children = self._request_children.get(key)
        if children is None:
            labels = dict(service_id=service_id, endpoint=endpoint, status_class=status_class)
            children = self._request_children[key] = (self.requests.labels(**labels), self.latency.labels(**labels))
        return children


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


def set_model_version(version: str) -> None:
    _metrics().model.labels(version=version).set(1)


@bp.get("/metrics")
def metrics():
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _metrics()  # the metric families exist (at zero) before the first request that counts
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


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
    # once (each proxy read costs ~1.5 µs).
    req, ctx = request._get_current_object(), g._get_current_object()
    request_id = ctx.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - ctx.get("request_started", time.perf_counter())
    endpoint = req.url_rule.rule if req.url_rule is not None else "unmatched"
    service_id = _service_label((req.view_args or {}).get("service_id"))
    status_class = f"{response.status_code // 100}xx"
    if endpoint != "/metrics":
        count, latency = _metrics().request_children(service_id, endpoint, status_class)
        count.inc()
        latency.observe(elapsed)
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


def _service_label(service_id: str | None) -> str:
    if service_id is None:
        return "-"
    from .runtime import EXTENSION

    state = current_app.extensions.get(EXTENSION)
    return service_id if state is not None and service_id in state.services else "unknown"


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
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
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


def init_app(app: Flask, settings: "Settings") -> None:
    configure_logging(settings.log_level)
    app.register_blueprint(bp)
