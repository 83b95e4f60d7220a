"""The appContext a card's SMART link carries to the app (CDS Hooks 2.0 §Link).

It is a string; ours is compact JSON so the app can rebuild the assessment the card showed:
the date the card assessed as of (the order date), the scenario, the drug in the draft order and
the hook call it came from. The EHR hands it back unchanged in the SMART token response
(``appContext``), where the app reads it. Nothing in it is secret or identifies the patient.

    {"v": 1, "service": "hcc-systemic-therapy-select", "hookInstance": "d1577c69-…",
     "asOf": "2025-03-01", "scenario": "first_line",
     "draft": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "495881",
               "display": "sorafenib"}}
"""

from __future__ import annotations

import json
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hcc_evidence.errors import HccCdsError

VERSION = 1
MAX_LENGTH = 2048  # far above what we write; bounds what the app will parse


class DraftDrug(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    system: str | None = None
    code: str | None = None
    display: str | None = None


class AppContext(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    v: int = VERSION
    service: str | None = None
    hook_instance: str | None = Field(None, alias="hookInstance")
    as_of: date = Field(alias="asOf")
    scenario: str | None = None
    draft: DraftDrug | None = None


class InvalidAppContext(HccCdsError, ValueError):
    """The appContext is not one this service wrote (wrong JSON, version or fields)."""


def app_context(
    *,
    as_of: date,
    scenario: str | None,
    hook_instance: str | None,
    service_id: str | None = None,
    drug_system: str | None = None,
    drug_code: str | None = None,
    drug_display: str | None = None,
) -> str:
    """The appContext string for a card's ``smart`` link (see the module docstring)."""
    draft = None
    if drug_system or drug_code or drug_display:
        draft = DraftDrug(system=drug_system, code=drug_code, display=drug_display)
    context = AppContext(service=service_id, hook_instance=hook_instance, as_of=as_of, scenario=scenario, draft=draft)
    return context.model_dump_json(by_alias=True, exclude_none=True)  # compact, in field order


def parse_app_context(text: str) -> AppContext:
    if len(text) > MAX_LENGTH:
        raise InvalidAppContext("appContext is too long")
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidAppContext("appContext is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise InvalidAppContext(f"appContext is not version {VERSION} of this service's format")
    try:
        return AppContext.model_validate(data)
    except ValidationError as exc:
        raise InvalidAppContext(f"appContext fields are invalid: {exc.errors()[0]['loc']}") from None
