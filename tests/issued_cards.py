"""Feedback is stored only on cards the service issued: tests audit the issuing assessment first."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from cds_service.store import AssessmentAudit, AuditCard, Store


def record_issued_cards(store: Store, service_id: str, cards: Mapping[str, Sequence[str]]) -> None:
    """Audit one assessment by ``service_id`` that issued each card uuid with its suggestion ids."""
    store.audit.record_assessment(
        AssessmentAudit(
            hook_instance=uuid.uuid4(),
            service_id=service_id,
            hook="order-select",
            outcome="cards",
            timing_ms=1.0,
            cards=[AuditCard(uuid=card, indicator="warning", suggestions=tuple(ids)) for card, ids in cards.items()],
        )
    )
