"""What the cards need to know beyond the assessment: where they are shown and how to link back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fhir_mappers.terminology import Terminology

from .i18n import DEFAULT_LOCALE

# Stable URIs for our own codes (card topics, override reasons): the same in every deployment,
# so feedback from different hospitals can be compared.
CODE_SYSTEM = "urn:hcc-sorafenib-cds"
_UUID_NAMESPACE = uuid.UUID("3f0c5a3e-7a0e-4c55-9f5e-2f1d3a6b8c11")


@dataclass(frozen=True)
class CardContext:
    hook_instance: str
    patient_id: str
    encounter_id: str | None
    base_url: str  # this service's external base URL, no trailing slash
    terminology: Terminology
    lab_lookback_days: int
    quiet_low_risk_card: bool = True
    alternatives_min_high_markers: int = 2
    smart_launch_url: str | None = None
    app_context: str | None = None
    locale: str = DEFAULT_LOCALE  # the clinician's language (cards.i18n.LOCALES)

    def card_uuid(self, kind: str) -> str:
        """Deterministic per hook call and card kind: a retried call yields the same uuid, so
        feedback on either copy refers to one card."""
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{self.hook_instance}/{kind}"))

    def suggestion_uuid(self, kind: str, label: str) -> str:
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{self.hook_instance}/{kind}/{label}"))
