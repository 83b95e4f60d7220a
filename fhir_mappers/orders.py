"""What is being ordered: classify CDS Hooks draft orders cheaply.

Called on every order-select / order-sign, so it walks plain dicts (no fhir.resources parsing)
and answers an irrelevant order in a few microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from fhir_mappers._common import MEDICATION_HOLDERS, as_dict, as_list, medication_source, text
from fhir_mappers.features import CodingRef
from fhir_mappers.fhirdates import parse_fhir_date
from fhir_mappers.terminology import Terminology


class DrugClass(str, Enum):
    SORAFENIB = "sorafenib"
    TKI = "tki"
    PD1_INHIBITOR = "pd1_inhibitor"
    OTHER_SYSTEMIC = "other_systemic"
    IRRELEVANT = "irrelevant"


class DraftOrder(BaseModel):
    reference: str  # "MedicationRequest/abc"
    resource_type: str
    resource_id: str | None = None
    drug: str | None = None  # canonical name, e.g. "lenvatinib"
    drug_class: DrugClass = DrugClass.IRRELEVANT
    coding: CodingRef | None = None  # the coding (or text) that matched
    # How the drug was recognised: "code" (a coding's system|code), "text" (a name in a coding's
    # display or the concept's text), "reference_display" (only medicationReference.display).
    identified_by: Literal["code", "text", "reference_display"] | None = None
    # A medicationReference (as written) that is neither contained, nor in the draft Bundle, nor
    # among the known Medications: the drug may be other than `drug` says until it is read.
    unresolved_reference: str | None = None
    authored_on: str | None = None  # as received


class DraftOrderSummary(BaseModel):
    orders: list[DraftOrder] = Field(default_factory=list)  # the orders considered

    def selected(self, selections: list[str] | None) -> DraftOrderSummary:
        """The orders named in `selections` (order-select); all of them for None (order-sign)."""
        if selections is None:
            return self
        wanted = {key for key in (_selection_key(s) for s in as_list(selections)) if key}
        orders = [order for order in self.orders if order.reference in wanted]
        return self if len(orders) == len(self.orders) else DraftOrderSummary(orders=orders)

    @property
    def relevant_orders(self) -> list[DraftOrder]:
        return [o for o in self.orders if o.drug_class is not DrugClass.IRRELEVANT]

    @property
    def unresolved_references(self) -> list[str]:
        """The unresolved medicationReferences of these orders, distinct, in order."""
        return list(dict.fromkeys(o.unresolved_reference for o in self.orders if o.unresolved_reference))

    @property
    def is_relevant(self) -> bool:
        return any(o.drug_class is not DrugClass.IRRELEVANT for o in self.orders)

    @property
    def sorafenib_orders(self) -> list[DraftOrder]:
        return [o for o in self.orders if o.drug_class is DrugClass.SORAFENIB]

    @property
    def tki_orders(self) -> list[DraftOrder]:
        return [o for o in self.orders if o.drug_class is DrugClass.TKI]

    @property
    def has_pd1_inhibitor(self) -> bool:
        return any(o.drug_class is DrugClass.PD1_INHIBITOR for o in self.orders)

    @property
    def order_date(self) -> date | None:
        """authoredOn of the first relevant order (calendar date as written), or None."""
        for order in self.relevant_orders:
            parsed = parse_fhir_date(order.authored_on)
            if parsed is not None and parsed.is_exact:
                return parsed.earliest
        return None


def _selection_key(selection: object) -> str | None:
    if not isinstance(selection, str):
        return None
    parts = selection.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def classify_draft_orders(
    draft_orders: dict[str, Any] | None,
    selections: list[str] | None,
    terminology: Terminology,
    medications: Mapping[str, dict[str, Any]] | None = None,
) -> DraftOrderSummary:
    """Classify `context.draftOrders` (a Bundle). With `selections` (order-select) only the
    selected orders count; without (order-sign) every draft order does (`.selected` narrows a
    summary of them all later, without classifying twice). Never raises.

    A drug is named, in order of preference, by medicationCodeableConcept, a contained
    Medication, a Medication in the draft Bundle, one in `medications` ('Medication/id' ->
    resource: what the caller found in the prefetch or read from the FHIR server), and last by
    the reference's display text."""
    bundle = as_dict(draft_orders)
    entries: list[object] = [as_dict(e).get("resource") for e in as_list(bundle.get("entry"))]
    if not entries and "resourceType" in bundle and bundle.get("resourceType") != "Bundle":
        entries = [bundle]
    resources: list[dict[str, Any]] = [
        r for r in entries if isinstance(r, dict) and isinstance(r.get("resourceType"), str)
    ]
    by_ref = {f"{r['resourceType']}/{r.get('id')}": r for r in resources if isinstance(r.get("id"), str)}
    if medications:
        by_ref = {**medications, **by_ref}  # the draft Bundle's own Medications first
    orders = []
    for resource in resources:
        kind = resource["resourceType"]
        if kind == "Medication":
            continue  # referenced by orders, not an order itself
        rid = text(resource.get("id"))
        reference = f"{kind}/{rid}"
        drug: dict[str, Any] = {}
        if kind in MEDICATION_HOLDERS:
            source = medication_source(resource, by_ref)
            matched = terminology.match_drug(source.concept)
            if matched is not None:
                name, coding = matched
                drug = {
                    "drug": name,
                    "drug_class": DrugClass(terminology.drugs[name].drug_class),
                    "coding": coding,
                    "identified_by": _identified_by(source.source, source.concept, terminology),
                }
            if source.unresolved is not None:
                drug["unresolved_reference"] = source.unresolved
        orders.append(
            DraftOrder(
                reference=reference,
                resource_type=kind,
                resource_id=rid,
                authored_on=text(resource.get("authoredOn")),
                **drug,
            )
        )
    return DraftOrderSummary(orders=orders).selected(selections)


def _identified_by(source: str | None, concept: dict[str, Any] | None, terminology: Terminology) -> str:
    if source == "reference_display":
        return "reference_display"
    codings = as_list(as_dict(concept).get("coding"))
    return "code" if any(terminology.match_drug_coding(c) is not None for c in codings) else "text"
