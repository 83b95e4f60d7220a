"""Flask application factory: nothing happens at import time; settings come in or from the env."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

from . import auth, feedback, health, hooks, model_card, observability, openapi, smart, ssrf
from .errors import register_error_handlers
from .json_provider import OrjsonProvider
from .pipeline import Pipeline
from .runtime import EXTENSION, Runtime
from .services import build_services, prefetch_templates
from .settings import Settings
from .store import FeedbackStore


def _cors_only_for_browsers(app: Flask) -> None:
    """Run flask-cors's response hook only when the request carries an Origin header.

    Without one (always_send=False) it adds nothing, yet working that out cost ~30 µs of a
    ~275 µs irrelevant-order call, on every server-to-server call an EHR makes.
    """
    hooks = app.after_request_funcs[None]
    position = next(i for i, hook in enumerate(hooks) if hook.__name__ == "cors_after_request")
    cors = hooks[position]

    def cors_after_request_with_origin(response: Response) -> Response:
        return cors(response) if "HTTP_ORIGIN" in request.environ else response

    hooks[position] = cors_after_request_with_origin


def create_app(settings: Settings | None = None, *, schema_prepared: bool = False) -> Flask:
    """``schema_prepared``: the caller has migrated or checked the database schema already (the
    gunicorn master, once for all its workers), so the app is built without touching the database."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    observability.init_app(app, settings)  # JSON logs, request ids, GET /metrics

    schema = "as-is" if schema_prepared else "migrate" if settings.migrate_on_start else "check"
    store = FeedbackStore(settings.database_url, schema=schema)
    pipeline = Pipeline(settings, store)
    templates = prefetch_templates(pipeline.terminology)
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        services=build_services(templates),
        store=store,
        pipeline=pipeline,
    )
    observability.expect_labels(app.extensions[EXTENSION].services, [t.key for t in templates])
    # The public CDS Hooks sandbox calls services from the browser; it needs CORS on every route but
    # /metrics (operational data, for the scraper only). Browsers always send Origin on those calls,
    # so EHR server-to-server calls get no CORS headers.
    CORS(
        app,
        resources={r"^/(?!metrics)": {}},
        origins=settings.allowed_origins,
        always_send=False,
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
    )
    _cors_only_for_browsers(app)
    register_error_handlers(app)
    if settings.jwt_enforced:
        auth.install(app, settings, replays=store)  # shared by all workers and replicas
    ssrf.init_app(app, ssrf.FhirServerPolicy.from_settings(settings))  # after auth: 401 before 400
    for blueprint in (hooks.bp, feedback.bp, health.bp, model_card.bp, openapi.bp):
        app.register_blueprint(blueprint)
    smart.init_app(app)  # SMART app at /smart (its own cookie settings)
    return app
