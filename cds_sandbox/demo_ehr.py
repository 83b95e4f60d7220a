"""The demo EHR: one page where a person picks a patient, orders a drug and sees the service's
cards as an EHR shows them, with every request and response beside them.

The browser talks only to this app; this app is the CDS Client (``EhrSimulator``, the same code
the end-to-end tests drive), so what the page shows is exactly what was sent and answered.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import markdown
import requests
from flask import Blueprint, Flask, abort, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from fhir_mappers.terminology import load_terminology

from .ehr_simulator import EhrSimulator, SimulatorError
from .patients import SandboxPatient, summarise

SERVICES = {"order-select": "hcc-systemic-therapy-select", "order-sign": "hcc-systemic-therapy-sign"}
RECORD_TYPES = (
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "AdverseEvent",
)
# An order the service has nothing to say about: RxNorm 617993, the unrelated drug of vignette v31
# (tests/fhir_factory.py AMOXICILLIN).
UNRELATED_DRUG = {
    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "code": "617993",
    "display": "Amoxicillin 120 MG/ML Oral Suspension",
}

bp = Blueprint("demo_ehr", __name__)


def drug_choices() -> dict[str, dict[str, Any]]:
    """The orderable drugs: codings from the service's own terminology file, so the service knows them."""
    terminology = load_terminology()
    choices = {}
    for name, label in (("sorafenib", "sorafenib"), ("lenvatinib", "lenvatinib"), ("regorafenib", "regorafenib (TKI)")):
        coding = terminology.drug_codes(name)[0]
        choices[name] = {"label": label, "coding": coding.model_dump()}
    choices["amoxicillin"] = {"label": "amoxicillin (unrelated drug)", "coding": UNRELATED_DRUG}
    return choices


def create_demo_ehr(*, cds_base: str, fhir_base: str, auth_base: str, patients: list[SandboxPatient]) -> Flask:
    app = Flask(__name__)
    app.config.update(
        CDS_BASE=cds_base,
        FHIR_BASE=fhir_base,
        AUTH_BASE=auth_base,
        PATIENTS={p.id: p for p in patients},
        DRUGS=drug_choices(),
    )
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def json_error(exc: HTTPException) -> Any:
        return jsonify({"error": exc.name, "detail": exc.description}), exc.code

    return app


def _ehr() -> EhrSimulator:
    config = current_app.config
    return EhrSimulator(cds_base=config["CDS_BASE"], fhir_base=config["FHIR_BASE"], auth_base=config["AUTH_BASE"])


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    return body


def _patient(patient_id: object) -> SandboxPatient:
    patient = current_app.config["PATIENTS"].get(patient_id)
    if patient is None:
        abort(404, f"no sandbox patient {patient_id!r}")
    return patient


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        abort(400, f"{name} must be a {kind.__name__}")
    return value


@bp.get("/")
def page() -> str:
    return render_template("ehr.html")


@bp.get("/api/patients")
def patients() -> Any:
    drugs = {choice["coding"]["code"]: name for name, choice in current_app.config["DRUGS"].items()}
    listing = []
    for patient in current_app.config["PATIENTS"].values():
        item = patient.listing()
        item["draftedDrug"] = drugs.get(patient.drafted_drug or "", "sorafenib")
        listing.append(item)
    drug_list = [{"id": name, "label": choice["label"]} for name, choice in current_app.config["DRUGS"].items()]
    return jsonify({"patients": listing, "drugs": drug_list, "hooks": list(SERVICES)})


@bp.get("/api/patients/<patient_id>/record")
def record(patient_id: str) -> Any:
    """The record as the FHIR server holds it now (suggestions applied included), one line per resource."""
    patient = _patient(patient_id)
    base = current_app.config["FHIR_BASE"]
    lines = []
    with requests.Session() as session:
        for kind in RECORD_TYPES:
            response = session.get(f"{base}/{kind}", params={"patient": patient.id, "_count": "200"}, timeout=10)
            response.raise_for_status()
            lines += [summarise(entry["resource"]) for entry in response.json().get("entry", [])]
    lines.sort(key=lambda line: (line["date"], line["type"]), reverse=True)
    return jsonify({"patient": patient.listing(), "lines": lines})


@bp.post("/api/hook")
def call_hook() -> Any:
    """Fire order-select or order-sign for a new draft order of the chosen drug (or the given one)."""
    body = _body()
    patient = _patient(body.get("patientId"))
    hook = body.get("hook")
    if hook not in SERVICES:
        abort(400, f"hook must be one of {sorted(SERVICES)}")
    draft = body.get("draftOrder")
    if draft is None:
        drug = current_app.config["DRUGS"].get(body.get("drug"))
        if drug is None:
            abort(400, f"drug must be one of {sorted(current_app.config['DRUGS'])}")
        draft = {
            "resourceType": "MedicationRequest",
            "id": f"sandbox-draft-{body['drug']}",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [drug["coding"]], "text": drug["coding"]["display"]},
            "authoredOn": patient.order_date,
        }
    elif not isinstance(draft, dict) or draft.get("resourceType") != "MedicationRequest" or "id" not in draft:
        abort(400, "draftOrder must be a MedicationRequest with an id")
    else:  # an order a suggestion created: dated, like every demo order, the patient's order date
        draft = {"authoredOn": patient.order_date, **draft}
    call = _ehr().call_hook(SERVICES[hook], patient.id, draft, with_prefetch=bool(body.get("prefetch", True)))
    cards = call.response.get("cards", []) if isinstance(call.response, dict) else []
    return jsonify(
        {
            "serviceId": call.service_id,
            "status": call.status,
            "request": call.request,
            "response": call.response,
            "draftOrder": draft,
            "detailHtml": [render_detail(card.get("detail") or "") for card in cards],
        }
    )


@bp.post("/api/apply")
def apply_suggestion() -> Any:
    """Apply a suggestion's actions on the FHIR server, then tell the service it was accepted."""
    body = _body()
    card = _field(body, "card", dict)
    suggestion = _field(body, "suggestion", dict)
    drafts = set(_field(body, "draftOrders", list))
    ehr = _ehr()
    try:
        result, removed = ehr.apply_suggestion(suggestion, draft_orders=drafts)
    except (SimulatorError, KeyError, TypeError) as exc:
        abort(422, f"the suggestion cannot be applied: {exc}")
    feedback = ehr.feedback(_field(body, "serviceId", str), card, suggestion)
    return jsonify(
        {
            "transactionResponse": result,
            "removedDrafts": removed,
            "newDraft": _created_order(result),
            "feedback": _exchange(feedback),
        }
    )


def _created_order(transaction_response: dict[str, Any] | None) -> dict[str, Any] | None:
    """The MedicationRequest the suggestion stored (with the id the FHIR server gave it), if any."""
    for entry in (transaction_response or {}).get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "MedicationRequest":
            return dict(resource)
    return None


@bp.post("/api/dismiss")
def dismiss() -> Any:
    """Feedback `overridden`, with the override reason the user picked (if any) and a comment."""
    body = _body()
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, dict):
        abort(400, "reason must be a Coding from the card's overrideReasons")
    comment = body.get("comment") or None
    if comment is not None and not isinstance(comment, str):
        abort(400, "comment must be a string")
    response = _ehr().feedback(_field(body, "serviceId", str), _field(body, "card", dict), None, reason, comment)
    return jsonify(_exchange(response))


def _exchange(response: requests.Response) -> dict[str, Any]:
    """What was sent to the service and what it answered, for the page's raw JSON panel."""
    sent = response.request.body
    return {
        "request": json.loads(sent) if sent else None,
        "status": response.status_code,
        "response": response.json(),
    }


@bp.post("/api/launch")
def launch() -> Any:
    """The EHR side of a `smart` link: bind the launch to the patient and the card's appContext."""
    body = _body()
    patient = _patient(body.get("patientId"))
    link = _field(body, "link", dict)
    if link.get("type") != "smart" or not isinstance(link.get("url"), str):
        abort(400, "link must be a card link of type smart")
    return jsonify({"url": _ehr().launch_url(link, patient.id)})


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def render_detail(text: str) -> str:
    """Card detail is GitHub-flavoured markdown; raw HTML in it is shown as text, not run.

    GitHub starts a list right after a paragraph line; Python-Markdown needs a blank line first.
    """
    lines: list[str] = []
    for line in html.escape(text, quote=False).splitlines():
        if _LIST_ITEM.match(line) and lines and lines[-1].strip() and not _LIST_ITEM.match(lines[-1]):
            lines.append("")
        lines.append(line)
    return markdown.markdown("\n".join(lines), extensions=["tables"])
