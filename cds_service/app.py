"""Flask application factory: nothing happens at import time; settings come in or from the env."""

from __future__ import annotations

from typing import Literal

from flask import Flask

from . import auth, cors, feedback, health, hooks, model_card, observability, openapi, smart, ssrf
from .assessor import Assessor
from .errors import register_error_handlers
from .json_provider import OrjsonProvider
from .pipeline import Pipeline
from .runtime import EXTENSION, Runtime
from .services import build_services, prefetch_templates
from .settings import Settings
from .store import Store


def create_app(settings: Settings | None = None, *, schema_prepared: bool = False) -> Flask:
    """``schema_prepared``: the caller has migrated or checked the database schema already (the
    gunicorn master, once for all its workers), so the app is built without touching the database."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    observability.init_app(app, settings)  # JSON logs, request ids, GET /metrics

    schema: Literal["migrate", "check", "as-is"] = (
        "as-is" if schema_prepared else "migrate" if settings.migrate_on_start else "check"
    )
    store = Store(settings.database_url, schema=schema)
    assessor = Assessor.load(settings)  # once: the hook pipeline and the SMART app share it
    templates = prefetch_templates(assessor.terminology, settings.labs_prefetch)
    services = build_services(templates)
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        services=services,
        store=store,
        assessor=assessor,
        pipeline=Pipeline(settings, store.audit, assessor),
    )
    observability.expect_labels(services, [t.key for t in templates])
    observability.watch(app, services, store.ping)
    cors.init_app(app, settings.allowed_origins)  # the CDS Hooks sandbox calls from the browser
    register_error_handlers(app)
    if settings.jwt_enforced:
        auth.install(app, settings, replays=store.replays)  # shared by all workers and replicas
    ssrf.init_app(app, ssrf.FhirServerPolicy.from_settings(settings))  # after auth: 401 before 400
    for blueprint in (hooks.bp, feedback.bp, health.bp, model_card.bp, openapi.bp):
        app.register_blueprint(blueprint)
    smart.init_app(app)  # SMART app at /smart (its own cookie settings)
    return app
