"""CDS Hooks 2.0 feedback endpoint: what clinicians did with the cards this service issued.

An entry is stored only for a card the audit log shows this service issued; a retry of a stored
entry is answered as a duplicate, and an entry contradicting what is stored is refused (see
``FeedbackStore.add``). 200 means every entry is now stored; otherwise the answer is the status of
the refusals (404 a card or suggestion never issued, 409 a conflict), and its body still says
which entries were stored.
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from . import observability
from .errors import ApiError
from .hooks import parse_json_body
from .runtime import runtime
from .schemas import FeedbackRequest
from .store import FeedbackResult, StoreUnavailable

bp = Blueprint("feedback", __name__)

# A card's audit row is queued once its answer is sent and written ~0.1 s later (cds_service.audit),
# by whichever worker answered. Feedback naming a card unknown so far is judged again: after this
# worker's pending rows are written (waiting at most AUDIT_WAIT_S), and every AUDIT_POLL_S until
# AUDIT_LAG_S has passed, for a row queued an instant after the answer left or by another worker.
# An EHR posting feedback the moment the cards arrive is not refused; a card never issued is
# refused after AUDIT_LAG_S.
AUDIT_WAIT_S = 2.0
AUDIT_LAG_S = 0.3
AUDIT_POLL_S = 0.1

# A refusal's status, and the field of the entry it is about.
REFUSALS = {
    "unknown_card": (404, "card"),
    "unknown_suggestion": (404, "acceptedSuggestions"),
    "outcome_conflict": (409, "outcome"),
    "feedback_conflict": (409, None),
}


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str):
    state = runtime()
    if service_id not in state.services:
        raise ApiError(404, "unknown_service", f"No CDS Service with id '{service_id}'.")
    entries = parse_json_body(FeedbackRequest, "feedback request").feedback
    results: list[FeedbackResult] = []
    try:
        results = state.store.feedback.add(service_id, entries)
        _judge_again_once_audited(state, service_id, entries, results)
    except StoreUnavailable:
        stored = sum(result.status == "stored" for result in results)
        saved = f"{stored} entries were saved; a retry answers them as duplicates" if stored else "nothing was saved"
        raise ApiError(503, "store_unavailable", f"Feedback could not be stored now; {saved}. Retry later.") from None
    observability.observe_feedback(service_id, results)
    return _answer(results)


def _judge_again_once_audited(state, service_id: str, entries, results: list[FeedbackResult]) -> None:
    """Judge the entries refused as ``unknown_card`` again as their audit rows may still come (see
    AUDIT_LAG_S); their new results replace the old in ``results``."""
    started = time.monotonic()
    unknown = [i for i, result in enumerate(results) if result.error == "unknown_card"]
    while unknown:
        state.pipeline.audit_writer.wait_written(max(0.0, started + AUDIT_WAIT_S - time.monotonic()))
        for i, result in zip(unknown, state.store.feedback.add(service_id, [entries[i] for i in unknown]), strict=True):
            results[i] = result
        unknown = [i for i in unknown if results[i].error == "unknown_card"]
        if time.monotonic() - started >= AUDIT_LAG_S:
            return
        time.sleep(AUDIT_POLL_S)


def _answer(results: list[FeedbackResult]):
    counts = {status: sum(r.status == status for r in results) for status in ("stored", "duplicate", "refused")}
    body = {
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "refused": counts["refused"],
        "results": [result.model_dump(exclude_none=True) for result in results],
    }
    if not counts["refused"]:
        return jsonify(body), 200
    refused = [(i, r, *REFUSALS[r.error]) for i, r in enumerate(results) if r.error]
    status = 409 if any(code == 409 for _, _, code, _ in refused) else 404
    details = [
        {"field": f"feedback.{i}" + (f".{field}" if field else ""), "problem": r.problem} for i, r, _, field in refused
    ]
    message = (
        f"{counts['refused']} of {len(results)} feedback entries refused; "
        f"{counts['stored']} stored now, {counts['duplicate']} stored already."
    )
    return jsonify({"error": "feedback_refused", "message": message, "details": details, **body}), status
