"""Discovery and hook endpoints. Views only translate HTTP ↔ typed objects and call the pipeline."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, jsonify, request
from pydantic import ValidationError

from . import observability
from .errors import ApiError
from .runtime import runtime
from .schemas import HookRequest

bp = Blueprint("hooks", __name__)


@bp.get("/cds-services")
def discovery():
    services = runtime().services.values()
    return jsonify({"services": [service.discovery_entry() for service in services]})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str):
    state = runtime()
    service = state.services.get(service_id)
    if service is None:
        raise ApiError(404, "unknown_service", f"No CDS Service with id '{service_id}'.")
    hook_request = parse_json_body(HookRequest, "CDS Hooks request")
    if hook_request.hook != service.hook:
        raise ApiError(
            400,
            "wrong_hook",
            f"Service '{service_id}' answers the '{service.hook}' hook, not '{hook_request.hook}'.",
            [{"field": "hook", "problem": f"expected '{service.hook}'"}],
        )
    answer = state.pipeline.assess(service, hook_request, lambda: state.settings.public_base_url or _base_url())
    audit = answer.audit
    # The fast path (nothing relevant ordered) has no audit row: the metric is its only record.
    observability.observe_assessment(service_id, audit.outcome if audit is not None else "fast_path")
    response = jsonify(answer.body)
    if audit is not None:
        # Queued once the answer is sent: the writer thread then never competes with this call.
        response.call_on_close(lambda: state.pipeline.audit_writer.submit(audit))
    return response


def _base_url() -> str:
    """This service's URL as the caller reached it, for card links when CDS_PUBLIC_BASE_URL is
    unset. A URL, not ``request.url_root``'s IRI: decoding the host to Unicode is slow (bench/README.md)."""
    return f"{request.scheme}://{request.host}{quote(request.root_path)}"


def parse_json_body(model, what: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", f"The {what} must be a JSON object sent as application/json.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError.from_validation(exc, what) from None
