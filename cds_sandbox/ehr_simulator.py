"""An EHR acting as a CDS Client (CDS Hooks 2.0), against a real FHIR server.

Discovery → prefetch templates filled by querying the FHIR server → the hook call with a draft
order → a suggestion's actions applied to the FHIR server as one transaction Bundle → feedback.
It also performs the EHR side of a card's ``smart`` link: it binds the link's ``appContext`` to
a launch at the SMART authorization server and gives the URL the user's browser opens.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests

TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
TIMEOUT = 10


class SimulatorError(AssertionError):
    pass


@dataclass
class HookCall:
    service_id: str
    hook_instance: str
    request: dict
    response: dict
    status: int


@dataclass
class EhrSimulator:
    cds_base: str
    fhir_base: str
    auth_base: str | None = None
    user_id: str = "Practitioner/example"
    session: requests.Session = field(default_factory=requests.Session)

    # --- discovery and prefetch -----------------------------------------------------------------

    def discover(self) -> list[dict]:
        response = self.session.get(f"{self.cds_base}/cds-services", timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()["services"]

    def fill_template(self, template: str, context: dict) -> str | None:
        """Replace {{context.x}} / {{userPractitionerId}} tokens; None if one has no value."""
        values = {f"context.{k}": v for k, v in context.items() if isinstance(v, str)}
        if self.user_id.startswith("Practitioner/"):
            values["userPractitionerId"] = self.user_id.split("/", 1)[1]
        missing = [t for t in TOKEN.findall(template) if t not in values]
        if missing:
            return None
        return TOKEN.sub(lambda m: values[m.group(1)], template)

    def prefetch(self, service: dict, context: dict) -> dict:
        """Every prefetch key the EHR can fill; a failed query is sent as null (spec: no data)."""
        result = {}
        for key, template in (service.get("prefetch") or {}).items():
            query = self.fill_template(template, context)
            if query is None:
                continue
            response = self.session.get(
                f"{self.fhir_base}/{query}", headers={"Accept": "application/fhir+json"}, timeout=TIMEOUT
            )
            result[key] = response.json() if response.ok else None
        return result

    # --- hook call ------------------------------------------------------------------------------

    def call_hook(self, service_id: str, patient_id: str, draft_order: dict, *, with_prefetch: bool = True) -> HookCall:
        """order-select (the draft is also the selection) or order-sign, as the service declares."""
        services = {s["id"]: s for s in self.discover()}
        service = services[service_id]
        draft_order = {**draft_order, "subject": {"reference": f"Patient/{patient_id}"}}
        context: dict = {"userId": self.user_id, "patientId": patient_id}
        if service["hook"] == "order-select":
            context["selections"] = [f"MedicationRequest/{draft_order['id']}"]
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft_order}]}
        body = {
            "hook": service["hook"],
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": self.fhir_base,
            "context": context,
        }
        if with_prefetch:
            body["prefetch"] = self.prefetch(service, context)
        response = self.session.post(f"{self.cds_base}/cds-services/{service_id}", json=body, timeout=TIMEOUT)
        return HookCall(service_id, body["hookInstance"], body, response.json(), response.status_code)

    # --- suggestions and feedback ---------------------------------------------------------------

    @staticmethod
    def first_suggestion(cards: list[dict]) -> tuple[dict, dict] | None:
        for card in cards:
            if card.get("suggestions"):
                return card, card["suggestions"][0]
        return None

    def apply_suggestion(
        self, suggestion: dict, draft_orders: AbstractSet[str] = frozenset()
    ) -> tuple[dict | None, list[str]]:
        """Apply the actions: deletes of the hook's own draft orders come off the EHR's order
        session (they were never stored on the FHIR server); everything else goes to the FHIR
        server as one transaction Bundle. Returns (transaction-response or None, drafts removed)."""
        entries, removed_drafts = [], []
        for action in suggestion.get("actions", []):
            kind = action["type"]
            if kind == "create":
                resource = action["resource"]
                entries.append(
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": resource,
                        "request": {"method": "POST", "url": resource["resourceType"]},
                    }
                )
            elif kind == "update":
                resource = action["resource"]
                entries.append(
                    {
                        "resource": resource,
                        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
                    }
                )
            elif kind == "delete":
                # CDS Hooks 2.0 shows resourceId as one relative reference in its example and
                # as an array in its table; a tolerant client takes either.
                references = action.get("resourceId")
                if isinstance(references, str):
                    references = [references]
                if (
                    not isinstance(references, list)
                    or not references
                    or not all(isinstance(r, str) for r in references)
                ):
                    raise SimulatorError(f"delete action needs resourceId (relative reference), got {references!r}")
                for reference in references:
                    if reference in draft_orders:
                        removed_drafts.append(reference)
                    else:
                        entries.append({"request": {"method": "DELETE", "url": reference}})
            else:
                raise SimulatorError(f"unknown action type {kind!r}")
        if not entries:
            return None, removed_drafts
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        response = self.session.post(
            self.fhir_base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=TIMEOUT
        )
        if response.status_code >= 300:
            raise SimulatorError(f"FHIR server refused the suggestion: {response.status_code} {response.text[:500]}")
        return response.json(), removed_drafts

    def feedback(
        self,
        service_id: str,
        card: dict,
        suggestion: dict | None = None,
        override_reason: dict | None = None,
        user_comment: str | None = None,
    ) -> requests.Response:
        """`accepted` with the suggestion taken, else `overridden` with the reason the user chose."""
        entry: dict = {"card": card["uuid"], "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="seconds")}
        if suggestion is not None:
            entry |= {"outcome": "accepted", "acceptedSuggestions": [{"id": suggestion["uuid"]}]}
        else:
            entry["outcome"] = "overridden"
            reason: dict[str, object] = {"reason": override_reason} if override_reason else {}
            if user_comment:
                reason["userComment"] = user_comment
            if reason:  # the spec allows none; an empty overrideReason is refused
                entry["overrideReason"] = reason
        return self.session.post(
            f"{self.cds_base}/cds-services/{service_id}/feedback", json={"feedback": [entry]}, timeout=TIMEOUT
        )

    # --- SMART link -----------------------------------------------------------------------------

    def launch_url(self, link: dict, patient_id: str) -> str:
        """The EHR side of a ``smart`` link: register the launch (with appContext), add iss + launch."""
        if self.auth_base is None:
            raise SimulatorError("no SMART authorization server configured")
        response = self.session.post(
            f"{self.auth_base}/launch",
            json={"patient": patient_id, "appContext": link.get("appContext")},
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        separator = "&" if "?" in link["url"] else "?"
        return f"{link['url']}{separator}{urlencode({'iss': self.fhir_base, 'launch': response.json()['launch']})}"
