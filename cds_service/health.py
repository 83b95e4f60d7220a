"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import observability
from .runtime import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    state = runtime()
    checks = {"database": state.store.ping(), "model": state.assessor.bundle is not None}
    observability.observe_database(checks["database"])
    status = 200 if all(checks.values()) else 503
    return jsonify({"status": "ready" if status == 200 else "not_ready", "checks": checks}), status
