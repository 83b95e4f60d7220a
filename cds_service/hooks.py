"""Discovery and hook endpoints. Views only translate HTTP ↔ typed objects and call the pipeline."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import ValidationError

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
    answer = state.pipeline.assess(
        service, hook_request, lambda: state.settings.public_base_url or request.url_root.rstrip("/")
    )
    response = jsonify(answer.body)
    if answer.audit is not None:
        # Queued once the answer is sent: the writer thread then never competes with this call.
        response.call_on_close(lambda: state.pipeline.audit_writer.submit(answer.audit))
    return response


def parse_json_body(model, what: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(
            400, "invalid_json", f"The {what} must be a JSON object sent as application/json."
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError.from_validation(exc, what) from None
