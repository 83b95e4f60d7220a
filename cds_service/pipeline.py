"""One hook call, end to end: draft orders → prefetch → features → models → cards.

Loaded once per process (terminology, model artifact, HTTP session); a call then costs only
the mapping and a few array operations. Irrelevant orders leave after the draft-order check.
A draft order that names its drug only by a ``medicationReference`` the draft orders do not
resolve costs more: the Medication is looked for in the prefetch, then read from ``fhirServer``,
and the orders are classified again.
The audit row of a call is handed back with the answer: the view queues it once the answer has
been sent, so that writing it never delays a clinician.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cards.context import CardContext
from cards.i18n import practitioner_locale
from cards.render import build_response
from fhir_mappers._common import collect, medication_references, reference_key
from fhir_mappers.notes import Note, joined
from fhir_mappers.orders import DraftOrder, DraftOrderSummary, DrugClass, classify_draft_orders
from fhir_mappers.resources import iter_resources
from models.assessment import Assessment

from . import observability
from .app_context import app_context
from .assessor import Assessor
from .audit import AuditWriter, model_use
from .fhir_client import FhirClient
from .patient_key import PatientKeyer
from .prefetch import PrefetchTemplate, ResolvedPrefetch, read_medications, resolve
from .schemas import HookRequest
from .services import USER_TEMPLATE, CdsService
from .settings import Settings
from .ssrf import FhirServerPolicy
from .store import AssessmentAudit, AuditCard, AuditLog

TRIGGER_CLASSES = (DrugClass.SORAFENIB, DrugClass.TKI)


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]  # the CDS Hooks response
    audit: AssessmentAudit | None = None  # None on the fast path


class Pipeline:
    def __init__(self, settings: Settings, audit_log: AuditLog, assessor: Assessor):
        self.settings = settings
        self.assessor = assessor
        self.terminology = assessor.terminology
        self.client = FhirClient(
            max_bytes=settings.fetch_max_bytes,
            max_pages=settings.fetch_max_pages,
            workers=settings.fetch_workers,
            policy=FhirServerPolicy.from_settings(settings),
            ca_bundle=settings.ca_bundle,
        )
        observability.set_model_version(assessor.bundle.version)
        self.audit_writer = AuditWriter(audit_log)
        self.patient_keyer = PatientKeyer.from_settings(settings)

    def assess(self, service: CdsService, request: HookRequest, base_url: Callable[[], str]) -> Answer:
        """``base_url`` is asked for only when cards are built: working it out from the request
        (IRI decoding of the host) cost the fast path time for nothing (bench/README.md)."""
        started = time.perf_counter()
        context = request.context
        every_draft = classify_draft_orders(context.draftOrders, None, self.terminology)
        selected = every_draft.selected(context.selections)
        trigger = _trigger(selected)
        if trigger is None and not selected.unresolved_references:
            return Answer({"cards": []})  # fast path: nothing we have evidence about is being ordered

        budget = self.settings.fetch_budget_seconds  # prefetch fetches and Medication reads together
        budget_started = time.monotonic()
        if trigger is None and request.fhir_base is None:
            # A selected order names its drug by a reference we cannot resolve, and there is no
            # fhirServer: only what the EHR sent can name it. Resolving the prefetch now could only
            # end in 412 for an order that may well be irrelevant.
            _, sent, _ = collect(request.prefetch or {})
            every_draft = classify_draft_orders(context.draftOrders, None, self.terminology, sent)
            selected = every_draft.selected(context.selections)
            trigger = _trigger(selected)
            if trigger is None:
                return Answer({"cards": []})

        resolved = resolve(request, _templates(service, request), self.client, budget)
        # The user's Practitioner says only which language to word the cards in: it is no clinical
        # data, so it never reaches the assessment nor, when it cannot be had, the missing-data list.
        locale = practitioner_locale(resolved.values.pop(USER_TEMPLATE.key, None)) or self.settings.locale
        resolved.missing.pop(USER_TEMPLATE.key, None)
        every_draft, selected, trigger = self._resolve_medications(
            request, resolved, every_draft, budget - (time.monotonic() - budget_started)
        )
        self._observe_fetches(resolved)
        if trigger is None:
            return Answer({"cards": []})  # the referenced Medications are not what we assess
        as_of = selected.order_date or datetime.now(UTC).date()
        assessment = self.assessor.assess(
            iter_resources([*resolved.values.values(), *resolved.medications.values()]),
            as_of=as_of,
            order=trigger,
            pd1_in_draft=every_draft.has_pd1_inhibitor,
            missing_data=resolved.missing,
        )
        cards_context = self._card_context(service, request, trigger, assessment, as_of, base_url(), locale)
        response = build_response(assessment, cards_context)
        observability.observe_cards(service.id, [card.indicator for card in response.cards])
        return Answer(response.to_json(), self._audit_record(service, request, assessment, response, resolved, started))

    def _resolve_medications(
        self, request: HookRequest, resolved: ResolvedPrefetch, every_draft: DraftOrderSummary, budget: float
    ) -> tuple[DraftOrderSummary, DraftOrderSummary, DraftOrder | None]:
        """Find the Medications that draft orders and the history reference but do not hold: in
        the prefetch (e.g. `_include`d), else read from fhirServer with what is left of the
        budget; then classify the draft orders again. The history reaches them through the
        resources handed to the assessment (`resolved.medications`)."""
        context = request.context
        flat, by_ref, _ = collect(resolved.values.values())
        known = {key: resource for key, resource in by_ref.items() if key.startswith("Medication/")}
        selected = every_draft.selected(context.selections)
        # The selected orders' references first, then the other draft orders' (a PD-1 inhibitor
        # among them changes the card), then the history's: read_medications caps the total.
        drafts = [*selected.unresolved_references, *every_draft.unresolved_references]
        wanted = [ref for ref in drafts if reference_key(ref) not in known]
        wanted += medication_references(flat, by_ref)
        if wanted:
            read_medications(request, wanted, self.client, budget, resolved)
        if not (known or resolved.medications) or not every_draft.unresolved_references:
            summary = every_draft
        else:
            summary = classify_draft_orders(
                context.draftOrders, None, self.terminology, {**resolved.medications, **known}
            )
        selected = summary.selected(context.selections)
        by_display = [
            Note(
                "pipeline.by_display_unread",
                "the drug of %(order)s was identified from the reference's display text only "
                "(%(reference)s could not be read)",
                order=order.reference,
                reference=reference_key(order.unresolved_reference) or order.unresolved_reference,
            )
            if order.unresolved_reference
            else Note(
                "pipeline.by_display_no_code",
                "the drug of %(order)s was identified from the reference's display text only "
                "(the referenced Medication names no drug code)",
                order=order.reference,
            )
            for order in selected.relevant_orders
            if order.identified_by == "reference_display"
        ]
        if by_display:
            resolved.missing["draftOrders"] = joined(by_display)
        return summary, selected, _trigger(selected)

    def _card_context(
        self,
        service: CdsService,
        request: HookRequest,
        trigger: DraftOrder,
        assessment: Assessment | None,
        as_of: date,
        base_url: str,
        locale: str,
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
            locale=locale,
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
        for _ in resolved.medications:
            observability.observe_fetch("Medication", True)  # the type, never the id: bounded labels
        for _ in range(resolved.medication_reads_failed):
            observability.observe_fetch("Medication", False)

    def _audit_record(self, service, request, assessment, response, resolved, started: float) -> AssessmentAudit:
        key_id, digest = self.patient_keyer.for_server(request.fhir_base or "").key(request.context.patientId)
        return AssessmentAudit(
            hook_instance=request.hookInstance,
            service_id=service.id,
            hook=request.hook,
            model_version=self.assessor.bundle.version,
            outcome="cards" if response.cards else "no_cards",
            timing_ms=(time.perf_counter() - started) * 1000,
            cards=[
                AuditCard(
                    uuid=c.uuid,
                    indicator=c.indicator,
                    kind=c.source.topic.code if c.source.topic else None,
                    suggestions=tuple(s.uuid for s in c.suggestions or ()),
                )
                for c in response.cards
            ],
            missing_data=sorted(resolved.missing) + sorted(assessment.missing_markers if assessment else []),
            patient_key_id=key_id,
            patient_digest=digest,
            **model_use(assessment),
        )


_PRACTITIONER_USER = re.compile(r"Practitioner/[A-Za-z0-9\-.]{1,64}")


def _templates(service: CdsService, request: HookRequest) -> list[PrefetchTemplate]:
    """The service's templates, without the user's Practitioner unless the EHR sent it or the user
    is a Practitioner with a FHIR id (another user type has no Practitioner to read)."""
    wanted = USER_TEMPLATE.key in (request.prefetch or {}) or _PRACTITIONER_USER.fullmatch(request.context.userId)
    return [t for t in service.templates if wanted or t.key != USER_TEMPLATE.key]


def _trigger(orders: DraftOrderSummary) -> DraftOrder | None:
    return next((o for o in orders.orders if o.drug_class in TRIGGER_CLASSES), None)
