"""One hook call, end to end: draft orders → prefetch → features → models → cards."""

from __future__ import annotations

from typing import Any

from .fhir_client import FhirClient
from .prefetch import resolve
from .schemas import HookRequest
from .services import CdsService
from .settings import Settings


class Pipeline:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = FhirClient(
            max_bytes=settings.fetch_max_bytes,
            max_pages=settings.fetch_max_pages,
            workers=settings.fetch_workers,
        )
        self.ready = True

    def assess(self, service: CdsService, request: HookRequest) -> dict[str, Any]:
        resolve(request, list(service.templates), self.client, self.settings.fetch_budget_seconds)
        return {"cards": []}
