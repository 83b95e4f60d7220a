"""Actionable suggestions: FHIR R4 MedicationRequests the EHR can create, and the draft to delete.

Every resource is validated with fhir.resources (R4B reads R4) before it leaves the service: an
EHR that applies our suggestion must never receive a resource its server rejects.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest

from fhir_mappers.features import CodingRef
from hcc_evidence import load_evidence
from hcc_evidence.errors import HccCdsError

from .context import CardContext
from .i18n import _
from .names import drug_name
from .schema import Action, Suggestion

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class UncodedDrug(HccCdsError, LookupError):
    """The terminology has no code for a drug, so no orderable suggestion can be made for it."""


def drug_coding(ctx: CardContext, drug: str) -> dict[str, str]:
    """The drug's orderable coding: RxNorm if the terminology has one, else a hospital's local
    code. ATC classifies substances and no EHR orders by it, so an ATC-only drug (the
    China-licensed PD-1 inhibitors, until a hospital adds its local code) is never drafted."""
    codes: list[CodingRef] = [c for c in ctx.terminology.drug_codes(drug) if c.system != ATC]
    if not codes:
        raise UncodedDrug(drug)
    best = next((c for c in codes if c.system == RXNORM), codes[0])
    return {k: v for k, v in (("system", best.system), ("code", best.code), ("display", best.display or drug)) if v}


def is_coded(ctx: CardContext, drug: str) -> bool:
    """Whether a draft order for the drug can carry an orderable code (see drug_coding)."""
    return any(c.system != ATC for c in ctx.terminology.drug_codes(drug))


def medication_request(ctx: CardContext, drug: str) -> dict[str, Any]:
    """A draft order for `drug`, validated as FHIR R4 (see the module docstring)."""
    coding = drug_coding(ctx, drug)
    if _FHIR_ID.match(ctx.patient_id) and (not ctx.encounter_id or _FHIR_ID.match(ctx.encounter_id)):
        # Only the ids differ between calls, and a FHIR id is valid in any reference: validate the
        # shape once (the model is costly per resource on every card otherwise: bench/README.md).
        _validate_shape(tuple(coding.items()), drug, ctx.encounter_id is not None)
        return _draft_order(coding, drug, ctx.patient_id, ctx.encounter_id)
    resource = _draft_order(coding, drug, ctx.patient_id, ctx.encounter_id)
    MedicationRequest.model_validate(resource)  # raises on anything a FHIR R4 server would reject
    return resource


def _draft_order(coding: dict[str, str], drug: str, patient_id: str, encounter_id: str | None) -> dict[str, Any]:
    """Dose, route and schedule are left to the prescriber on purpose: the study gives none for
    these regimens, and we never invent clinical numbers."""
    doi = load_evidence().source.doi
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [coding], "text": drug_name(drug)},
        "subject": {"reference": f"Patient/{patient_id}"},
        "note": [
            {
                "text": _(
                    "Suggested by the HCC sorafenib CDS service (Lei et al. 2025, doi:%(doi)s). "
                    "Dose, route and schedule to be set by the prescriber.",
                    doi=doi,
                )
            }
        ],
    }
    if encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    return resource


@lru_cache(maxsize=256)
def _validate_shape(coding: tuple[tuple[str, str], ...], drug: str, with_encounter: bool) -> None:
    """fhir.resources validation of one suggestion shape; raises (and caches nothing) if invalid."""
    MedicationRequest.model_validate(_draft_order(dict(coding), drug, "id", "id" if with_encounter else None))


def replace_order(ctx: CardContext, kind: str, label: str, draft_reference: str, drugs: list[str]) -> Suggestion:
    actions = [
        Action(
            type="delete",
            description=_("Remove the draft order %(reference)s", reference=draft_reference),
            resourceId=draft_reference,
        )
    ] + [_create(ctx, drug) for drug in drugs]
    return Suggestion(label=label, uuid=ctx.suggestion_uuid(kind, label), actions=actions)


def add_order(ctx: CardContext, kind: str, label: str, drug: str) -> Suggestion:
    return Suggestion(label=label, uuid=ctx.suggestion_uuid(kind, label), actions=[_create(ctx, drug)])


def _create(ctx: CardContext, drug: str) -> Action:
    description = _("Create a draft order for %(drug)s", drug=drug_name(drug))
    return Action(type="create", description=description, resource=medication_request(ctx, drug))
