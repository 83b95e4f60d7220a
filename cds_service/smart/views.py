"""SMART App Launch 2 endpoints and the app page.

- ``GET /smart/launch?iss=…&launch=…`` — EHR launch (or standalone: ``iss`` only, or none with
  ``CDS_SMART_DEFAULT_ISS``): discover the endpoints, remember state + PKCE verifier in the
  signed session cookie, redirect to the authorization endpoint.
- ``GET /smart/app?code=…&state=…`` — the redirect URI: exchange the code (PKCE), read the
  launch context (patient, appContext) from the token response, read the record with the access
  token, and render the page. The token is used for this one request and kept nowhere.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from cards import app_text, i18n
from cards.notes import say
from models.model_card import model_card_markdown

from ..app_context import InvalidAppContext, parse_app_context
from ..fhir_client import FhirClient
from ..runtime import runtime
from ..ssrf import FhirServerRefused
from . import charts
from .assessment import build_view
from .data import fetch_patient_record
from .oauth import SmartError, SmartPolicies, authorization_url, discover, exchange_code

bp = Blueprint("smart", __name__, url_prefix="/smart", template_folder="templates", static_folder="static")

EXTENSION = "hcc_smart"
FLOW_KEY = "smart_flow"
SERVICE_ID = "hcc-systemic-therapy-select"
DOI = "10.1177/17588359241299678"


class CookieOnDemandSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, opened only when the request carries our cookie. Flask opens the
    session on every request, and parsing cookies and building its signing serializer cost each
    hook call that never uses it (only the SMART launch does) a measurable share (bench/README.md)."""

    def open_session(self, app, request):
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


@dataclass(frozen=True)
class SmartOutbound:
    """The app's own outbound client and a bulkhead: launches waiting on a slow or hanging EHR
    server hold at most half the worker's threads, so hook calls keep theirs; the app's reads use
    their own fetch threads, so they never queue behind (or in front of) a hook's fallback fetch."""

    client: FhirClient
    policies: SmartPolicies
    slots: threading.BoundedSemaphore


def init_app(app) -> None:
    settings = runtime_settings(app)
    app.extensions[EXTENSION] = SmartOutbound(
        FhirClient(
            max_bytes=settings.fetch_max_bytes,
            max_pages=settings.fetch_max_pages,
            workers=settings.fetch_workers,
            ca_bundle=settings.ca_bundle,
        ),
        SmartPolicies.from_settings(settings),
        threading.BoundedSemaphore(max(1, settings.threads // 2)),
    )
    secret = settings.smart_session_secret
    app.secret_key = secret.get_secret_value() if secret else secrets.token_hex(32)
    app.session_interface = CookieOnDemandSessionInterface()
    secure = (settings.public_base_url or "").startswith("https://")
    # Inside an EHR iframe the cookie is third-party: it needs SameSite=None, which needs Secure.
    app.config.update(
        SESSION_COOKIE_NAME="hcc_smart",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_SAMESITE="None" if secure else "Lax",
        SESSION_COOKIE_PATH="/smart",
    )
    # Templates word themselves through the same catalogue as the cards ({% trans %}, _()).
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(i18n.translate, i18n.translate_plural, newstyle=True)
    app.jinja_env.globals.update(html_lang=i18n.html_lang, fmt_pct=i18n.pct, fmt_decimal=i18n.decimal, fmt_day=i18n.day)
    app.register_blueprint(bp)


@bp.before_request
def _choose_language() -> None:
    """The browser's language when the service ships it, else the deployment's (CDS_LOCALE)."""
    chosen = i18n.choose(request.accept_languages.values(), runtime().settings.locale)
    g.smart_language_reset = i18n.activate(chosen)


@bp.teardown_request
def _reset_language(_exc: BaseException | None) -> None:
    reset = g.pop("smart_language_reset", None)
    if reset is not None:
        reset()


def runtime_settings(app=None):
    return (app or current_app).extensions["hcc_cds"].settings


def _outbound() -> SmartOutbound:
    return current_app.extensions[EXTENSION]


def _redirect_uri() -> str:
    base = runtime().settings.public_base_url
    if base:
        return f"{base.rstrip('/')}{url_for('smart.app_page')}"
    return url_for("smart.app_page", _external=True)


def _error(message: str, status: int = 400):
    return render_template("smart/error.html", message=message), status


def _busy():
    response = current_app.make_response(_error(app_text.error("busy"), 503))
    response.headers["Retry-After"] = "5"
    return response


@bp.get("/launch")
def launch():
    settings = runtime().settings
    iss = request.args.get("iss") or settings.smart_default_iss
    launch_token = request.args.get("launch")
    if not iss:
        return _error(app_text.error("no_iss"))
    outbound = _outbound()
    try:
        outbound.policies.iss.check_url(iss)
    except FhirServerRefused:
        return _error(app_text.error("iss_refused"), 403)
    scope = settings.smart_scope
    if not launch_token:  # standalone launch: ask the EHR to pick the patient
        scope = " ".join(s for s in scope.split() if s != "launch") + " launch/patient"
    if not outbound.slots.acquire(blocking=False):
        return _busy()
    try:
        endpoints = discover(iss, outbound.client, outbound.policies, settings.smart_timeout_seconds)
        url, state, verifier = authorization_url(
            endpoints,
            client_id=settings.smart_client_id,
            redirect_uri=_redirect_uri(),
            scope=scope,
            iss=iss,
            launch=launch_token,
        )
    except SmartError as exc:
        return _error(say(exc.message), 502)
    finally:
        outbound.slots.release()
    session[FLOW_KEY] = {
        "state": state,
        "verifier": verifier,
        "iss": iss,
        "token_endpoint": endpoints.token_endpoint,
    }
    return redirect(url, code=302)


@bp.get("/app")
def app_page():
    settings = runtime().settings
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        return _error(app_text.authorization_refused(reason), 403)
    outbound = _outbound()
    if not outbound.slots.acquire(blocking=False):
        return _busy()  # before the launch is taken from the cookie: reloading the page retries it
    try:
        flow = session.pop(FLOW_KEY, None)
        code, state = request.args.get("code"), request.args.get("state")
        if not code or not state:
            return _error(app_text.error("no_code"))
        if not flow or not secrets.compare_digest(flow.get("state", ""), state):
            return _error(app_text.error("expired"))
        token = exchange_code(
            flow["token_endpoint"],
            client=outbound.client,
            policies=outbound.policies,
            client_id=settings.smart_client_id,
            redirect_uri=_redirect_uri(),
            code=code,
            verifier=flow["verifier"],
            timeout=settings.smart_timeout_seconds,
        )
        patient_id = token.get("patient")
        if not isinstance(patient_id, str) or not patient_id:
            return _error(app_text.error("no_patient"))
        context = None
        raw_context = token.get("appContext")
        if raw_context:
            try:
                context = parse_app_context(raw_context)
            except InvalidAppContext as exc:
                return _error(app_text.unreadable_context(str(exc)))
        service = runtime().services[
            context.service if context and context.service in runtime().services else SERVICE_ID
        ]
        patient, resources = fetch_patient_record(
            flow["iss"],
            token["access_token"],
            patient_id,
            service,
            client=outbound.client,
            policy=outbound.policies.iss,
            timeout=settings.smart_timeout_seconds,
        )
    except SmartError as exc:
        return _error(say(exc.message), 502)
    finally:
        outbound.slots.release()
    as_of = context.as_of if context else date.today()
    view = build_view(patient, patient_id, resources, as_of=as_of, context=context, assessor=runtime().assessor)
    panels = view.survival or view.reference_only
    svgs = {panel.endpoint: charts.survival_svg(panel, f"chart-{panel.endpoint}") for panel in panels}
    response = current_app.make_response(
        render_template(
            "smart/app.html",
            view=view,
            panels=panels,
            svgs=svgs,
            table_rows=charts.table_rows,
            doi=DOI,
            model_card_url=url_for("smart.model_card"),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    # Everything is served from here; the EHR may frame the page. The charts style by SVG
    # presentation attributes (cds_service/svg_plot.py), which need no inline-style allowance.
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self'"
    return response


@bp.get("/model-card")
def model_card():
    """The model card of the loaded models (CDS_MODEL_DIR, else the shipped ones), as Markdown in
    the page's language."""
    text = model_card_markdown(runtime().assessor.bundle.artifact, say)
    return current_app.response_class(text, mimetype="text/markdown; charset=utf-8")


@bp.get("/")
def index():
    if request.args.get("iss"):
        query: dict[str, Any] = request.args.to_dict()
        return redirect(url_for("smart.launch", **query))
    abort(404)
