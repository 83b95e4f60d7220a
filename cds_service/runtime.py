"""The per-app objects that views share (built once by the app factory, never at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .services import CdsService
    from .settings import Settings
    from .store import FeedbackStore

EXTENSION = "hcc_cds"


@dataclass
class Runtime:
    settings: Settings
    services: dict[str, CdsService]
    store: FeedbackStore
    pipeline: Pipeline


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
