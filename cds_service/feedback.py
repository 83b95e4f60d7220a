"""CDS Hooks 2.0 feedback endpoint: every accepted or overridden card is stored for analytics."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .errors import ApiError
from .hooks import parse_json_body
from .runtime import runtime
from .schemas import FeedbackRequest
from .store import StoreUnavailable

bp = Blueprint("feedback", __name__)


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str):
    state = runtime()
    if service_id not in state.services:
        raise ApiError(404, "unknown_service", f"No CDS Service with id '{service_id}'.")
    body = parse_json_body(FeedbackRequest, "feedback request")
    try:
        stored = state.store.add(service_id, body.feedback)
    except StoreUnavailable:
        raise ApiError(
            503, "store_unavailable", "Feedback could not be stored now; nothing was saved. Retry later."
        ) from None
    return jsonify({"stored": stored}), 200
