"""The per-app objects that views share (built once by the app factory, never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .assessor import Assessor
    from .pipeline import Pipeline
    from .services import CdsService
    from .settings import Settings
    from .store import Store

EXTENSION = "hcc_cds"


@dataclass
class Runtime:
    settings: Settings
    services: dict[str, CdsService]
    store: Store
    assessor: Assessor  # the models and terminology of both the hook pipeline and the SMART app
    pipeline: Pipeline


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
