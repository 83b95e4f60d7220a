"""A SMART App Launch 2 authorization server for the sandbox and the end-to-end tests, built on Authlib (Flask).

What a real EHR's authorization server does for an EHR launch, in memory:

- ``POST /launch`` (the EHR's own job, done by the demo EHR and the tests) registers a launch context — patient,
  encounter, appContext — and answers ``{"launch": "<opaque id>"}``.
- ``GET /authorize`` checks the request (client, redirect URI, ``aud`` = the FHIR base, PKCE
  S256 challenge, the ``launch`` id) and shows a login + approve form; ``POST /authorize``
  checks the user and redirects back with a code.
- ``POST /token`` exchanges the code (PKCE verifier required: public clients only) and answers
  the SMART token response: ``access_token``, ``scope``, ``patient``, ``encounter`` and, when
  the launch carried one, ``appContext`` (CDS Hooks 2.0 §Link: the card's appContext reaches
  the app in the token response).
- ``POST /introspect`` tells whether a token is active (RFC 7662), for the FHIR side.

The FHIR server (``fhir_server/server.mjs``) serves ``/.well-known/smart-configuration`` for its
base with this server's endpoints, so the FHIR base URL is the ``iss``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from html import escape

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

USERNAME = "clinician"
PASSWORD = "test-password"
SCOPES = (
    "launch launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs "
    "patient/Condition.rs patient/Procedure.rs patient/DiagnosticReport.rs "
    "patient/MedicationRequest.rs patient/MedicationStatement.rs "
    "patient/MedicationAdministration.rs"
)


@dataclass
class Client(ClientMixin):
    client_id: str
    redirect_uris: list[str]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        allowed = set(SCOPES.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return False  # public client: PKCE instead of a secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class LaunchContext:
    """Who approved, and the context the EHR bound to the launch (Authlib's "user")."""

    username: str
    patient: str | None = None
    encounter: str | None = None
    app_context: str | None = None

    def get_user_id(self):
        return self.username


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: LaunchContext
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() > self.expires_at


@dataclass
class State:
    fhir_base: str = ""
    proxy_bases: set[str] = field(default_factory=set)  # the same FHIR server behind a proxy: also an `aud`
    clients: dict[str, Client] = field(default_factory=dict)
    launches: dict[str, LaunchContext] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class S256Only(CodeChallenge):
    """PKCE required, S256 only (SMART App Launch 2): a request without a challenge is refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required")
        super().validate_code_challenge(grant, redirect_uri)


def create_auth_app(fhir_base: str, client_id: str, redirect_uris: list[str]) -> tuple[Flask, State]:
    state = State(fhir_base=fhir_base)
    state.clients[client_id] = Client(client_id, list(redirect_uris))
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(16)

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def save_authorization_code(self, code, req):
            data = req.payload.data
            with state.lock:
                state.codes[code] = AuthorizationCode(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.scope or "",
                    user=req.user,
                    code_challenge=data["code_challenge"],
                    code_challenge_method=data["code_challenge_method"],
                    expires_at=time.time() + 60,
                )

        def query_authorization_code(self, code, client):
            item = state.codes.get(code)
            if item and item.client_id == client.client_id and not item.is_expired():
                return item
            return None

        def delete_authorization_code(self, authorization_code):
            with state.lock:
                state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return authorization_code.user

    bearer = BearerTokenGenerator(lambda **_: secrets.token_urlsafe(32))

    def generate_token(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        token = bearer(grant_type, client, user=user, scope=scope, expires_in=3600, include_refresh_token=False)
        # SMART launch context parameters travel in the token response.
        if user is not None:
            if user.patient:
                token["patient"] = user.patient
            if user.encounter:
                token["encounter"] = user.encounter
            if user.app_context is not None:
                token["appContext"] = user.app_context
            token["need_patient_banner"] = False
        return token

    def save_token(token, req):
        with state.lock:
            state.tokens[token["access_token"]] = {
                "client_id": req.client.client_id,
                "scope": token.get("scope", ""),
                "patient": token.get("patient"),
                "exp": time.time() + token.get("expires_in", 3600),
            }

    server = AuthorizationServer(app, query_client=state.clients.get, save_token=save_token)
    server.register_token_generator("default", generate_token)
    server.register_grant(CodeGrant, [S256Only(required=True)])

    @app.post("/launch")
    def register_launch():
        body = request.get_json(force=True)
        launch_id = secrets.token_urlsafe(12)
        with state.lock:
            state.launches[launch_id] = LaunchContext(
                username="",
                patient=body.get("patient"),
                encounter=body.get("encounter"),
                app_context=body.get("appContext"),
            )
        return jsonify({"launch": launch_id})

    def check_smart_request():
        """SMART additions to the OAuth request: aud must be our FHIR base; launch must be known."""
        audiences = {base.rstrip("/") for base in (state.fhir_base, *state.proxy_bases)}
        if request.values.get("aud", "").rstrip("/") not in audiences:
            return f"aud must be the FHIR base URL {state.fhir_base} (or a proxy of it)"
        launch = request.values.get("launch")
        if launch is not None and launch not in state.launches:
            return "unknown launch"
        return None

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        problem = check_smart_request()
        if problem:
            return jsonify({"error": "invalid_request", "error_description": problem}), 400
        if request.method == "GET":
            try:
                grant = server.get_consent_grant(end_user=None)
            except Exception as exc:  # an OAuth error: show it, as a real server would
                return jsonify({"error": getattr(exc, "error", "invalid_request"), "error_description": str(exc)}), 400
            return login_page(grant.client.client_id, grant.request.scope or "")
        if request.form.get("username") != USERNAME or request.form.get("password") != PASSWORD:
            return login_page(
                request.values.get("client_id", ""), request.values.get("scope", ""), "Wrong user name or password."
            ), 401
        launch = state.launches.get(request.values.get("launch", ""))
        user = LaunchContext(
            username=USERNAME,
            patient=launch.patient if launch else request.form.get("patient") or None,
            encounter=launch.encounter if launch else None,
            app_context=launch.app_context if launch else None,
        )
        return server.create_authorization_response(grant_user=user)

    @app.post("/token")
    def issue_token():
        return server.create_token_response()

    @app.post("/introspect")
    def introspect():
        info = state.tokens.get(request.form.get("token", ""))
        if not info or info["exp"] < time.time():
            return jsonify({"active": False})
        return jsonify({"active": True, **info})

    def login_page(client_id: str, scope: str, error: str = ""):
        # Re-post every authorization parameter with the credentials.
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in request.values.items()
            if k not in {"username", "password"}
        )
        patient_picker = ""
        if "launch" not in request.values:
            patient_picker = '<p><label for="patient">Patient id</label> <input id="patient" name="patient"></p>'
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test EHR sign-in</title></head>
<body><main><h1>Test EHR sign-in</h1>
<p>{escape(client_id)} asks for: {escape(scope)}</p>
{f'<p role="alert">{escape(error)}</p>' if error else ""}
<form method="post" action="/authorize">{hidden}
<p><label for="username">User name</label> <input id="username" name="username" autocomplete="username"></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password"></p>
{patient_picker}
<button type="submit" id="approve">Sign in and approve</button></form></main></body></html>"""

    return app, state


def smart_configuration(auth_base: str) -> dict:
    """The document served at {iss}/.well-known/smart-configuration (SMART App Launch 2)."""
    return {
        "issuer": auth_base,
        "authorization_endpoint": f"{auth_base}/authorize",
        "token_endpoint": f"{auth_base}/token",
        "introspection_endpoint": f"{auth_base}/introspect",
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": SCOPES.split(),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "context-ehr-patient",
            "context-ehr-encounter",
            "context-standalone-patient",
            "permission-v2",
        ],
    }


class AuthServer:
    """The auth app on a free loopback port, in a thread (the redirect URIs are set later)."""

    def __init__(self, fhir_base: str, client_id: str):
        self.fhir_base = fhir_base
        self.client_id = client_id
        self.app, self.state = create_auth_app(fhir_base, client_id, [])
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def set_fhir_base(self, fhir_base: str) -> None:
        self.fhir_base = self.state.fhir_base = fhir_base

    def add_proxy_base(self, proxy_base: str) -> None:
        """An `iss` that proxies the FHIR base (as a SMART launcher does): accepted as `aud` too."""
        self.state.proxy_bases.add(proxy_base)

    def allow_redirect_uri(self, uri: str) -> None:
        self.state.clients[self.client_id].redirect_uris.append(uri)

    def start(self) -> AuthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
