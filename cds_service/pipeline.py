"""One hook call, end to end: draft orders → prefetch → features → models → cards.

Loaded once per process (terminology, model artifact, HTTP session); a call then costs only
the mapping and a few array operations. Irrelevant orders leave after the draft-order check.
The audit row of a call is handed back with the answer: the view queues it once the answer has
been sent, so that writing it never delays a clinician.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from cards.context import CardContext
from cards.render import build_response
from fhir_mappers.orders import DraftOrder, DrugClass, classify_draft_orders
from fhir_mappers.resources import iter_resources
from fhir_mappers.terminology import Terminology, load_terminology
from models.assessment import Assessment, assess
from models.registry import ModelBundle, load_bundle

from . import observability
from .audit import AuditWriter
from .fhir_client import FhirClient
from .prefetch import ResolvedPrefetch, resolve
from .schemas import HookRequest
from .services import CdsService
from .settings import Settings
from .ssrf import FhirServerPolicy
from .smart import app_context
from .store import AssessmentAudit, AuditCard, FeedbackStore

TRIGGER_CLASSES = (DrugClass.SORAFENIB, DrugClass.TKI)


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]  # the CDS Hooks response
    audit: AssessmentAudit | None = None  # None on the fast path


class Pipeline:
    def __init__(self, settings: Settings, store: FeedbackStore):
        self.settings = settings
        self.terminology: Terminology = load_terminology(settings.terminology_path)
        self.bundle: ModelBundle = load_bundle(settings.model_dir)
        self.client = FhirClient(
            max_bytes=settings.fetch_max_bytes,
            max_pages=settings.fetch_max_pages,
            workers=settings.fetch_workers,
            policy=FhirServerPolicy.from_settings(settings),
        )
        observability.set_model_version(self.bundle.version)
        self.audit_writer = AuditWriter(store)

    @property
    def ready(self) -> bool:
        return self.bundle is not None and self.terminology is not None

    def assess(self, service: CdsService, request: HookRequest, base_url: Callable[[], str]) -> Answer:
        """``base_url`` is asked for only when cards are built: working it out from the request
        (IRI decoding of the host) cost the fast path ~15 µs for nothing."""
        started = time.perf_counter()
        context = request.context
        every_draft = classify_draft_orders(context.draftOrders, None, self.terminology)
        selected = every_draft.selected(context.selections)
        trigger = next((o for o in selected.orders if o.drug_class in TRIGGER_CLASSES), None)
        if trigger is None:
            return Answer({"cards": []})  # fast path: nothing we have evidence about is being ordered

        resolved = resolve(request, list(service.templates), self.client, self.settings.fetch_budget_seconds)
        self._observe_fetches(resolved)
        as_of = selected.order_date or datetime.now(timezone.utc).date()
        assessment = assess(
            iter_resources(resolved.values.values()),
            as_of=as_of,
            ordered_drug=trigger.drug or trigger.drug_class.value,
            ordered_class=trigger.drug_class.value,
            ordered_reference=trigger.reference,
            pd1_in_draft=every_draft.has_pd1_inhibitor,
            bundle=self.bundle,
            terminology=self.terminology,
            missing_data=resolved.missing,
            lab_lookback_days=self.settings.lab_lookback_days,
            imaging_lookback_days=self.settings.imaging_lookback_days,
        )
        cards_context = self._card_context(service, request, trigger, assessment, as_of, base_url())
        response = build_response(assessment, cards_context)
        observability.observe_cards(service.id, [card.indicator for card in response.cards])
        return Answer(response.to_json(), self._audit_record(service, request, assessment, response, resolved, started))

    def _card_context(
        self,
        service: CdsService,
        request: HookRequest,
        trigger: DraftOrder,
        assessment: Assessment | None,
        as_of: date,
        base_url: str,
    ) -> CardContext:
        coding = trigger.coding
        return CardContext(
            hook_instance=str(request.hookInstance),
            patient_id=request.context.patientId,
            encounter_id=request.context.encounterId,
            base_url=base_url,
            terminology=self.terminology,
            lab_lookback_days=self.settings.lab_lookback_days,
            quiet_low_risk_card=self.settings.quiet_low_risk_card,
            alternatives_min_high_markers=self.settings.alternatives_min_high_markers,
            smart_launch_url=self.settings.smart_app_url or f"{base_url}/smart/launch",
            app_context=app_context(
                as_of=as_of,
                scenario=assessment.scenario.value if assessment else None,
                hook_instance=str(request.hookInstance),
                service_id=service.id,
                drug_system=coding.system if coding else None,
                drug_code=coding.code if coding else None,
                drug_display=(coding.display if coding else None) or trigger.drug,
            ),
        )

    @staticmethod
    def _observe_fetches(resolved: ResolvedPrefetch) -> None:
        for key in resolved.fetched:
            observability.observe_fetch(key, True)
        for key in resolved.fetch_failed:
            observability.observe_fetch(key, False)

    def _audit_record(self, service, request, assessment, response, resolved, started: float) -> AssessmentAudit:
        return AssessmentAudit(
            hook_instance=request.hookInstance,
            service_id=service.id,
            hook=request.hook,
            model_version=self.bundle.version,
            outcome="cards" if response.cards else "no_cards",
            timing_ms=(time.perf_counter() - started) * 1000,
            cards=[AuditCard(uuid=c.uuid, indicator=c.indicator, kind=c.source.topic.code if c.source.topic else None) for c in response.cards],
            missing_data=sorted(resolved.missing) + sorted(assessment.missing_markers if assessment else []),
        )
