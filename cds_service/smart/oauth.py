"""SMART App Launch 2 client side: endpoint discovery and the PKCE authorization-code flow.

Authlib builds the authorization request (state, S256 challenge); this module adds what SMART
defines on top (discovery from ``{iss}/.well-known/smart-configuration``, the ``aud`` and
``launch`` parameters) and sends every server-side request through the service's guarded
outbound client: the ``iss`` policy for discovery, address rules for the token endpoint that
receives the code and the PKCE verifier, no redirects, one deadline per call, a byte cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from fhir_mappers.notes import Note
from hcc_evidence.errors import HccCdsError

from ..fhir_client import FetchError, FhirClient
from ..ssrf import FhirServerPolicy, FhirServerRefused


class SmartError(HccCdsError):
    """Launch or authorization failed; the message (a Note, worded in the user's language by
    ``cards.notes.say``) is safe to show."""

    @property
    def message(self) -> str:
        """The message as raised: a Note keeps its id and values for the user's language."""
        first = self.args[0] if self.args else ""
        return first if isinstance(first, str) else str(first)


@dataclass(frozen=True)
class SmartEndpoints:
    authorization_endpoint: str
    token_endpoint: str


@dataclass(frozen=True)
class SmartPolicies:
    """Where the app may go: ``iss`` (the FHIR server: allowlist, addresses) and the endpoints its
    configuration names (addresses only: an authorization server often lives on another host)."""

    iss: FhirServerPolicy
    endpoints: FhirServerPolicy

    @classmethod
    def from_settings(cls, settings) -> SmartPolicies:
        production = settings.environment == "production"
        allowlist = tuple(settings.smart_iss_allowlist or settings.fhir_server_allowlist)
        return cls(FhirServerPolicy(allowlist, production), FhirServerPolicy((), production))


def discover(iss: str, client: FhirClient, policies: SmartPolicies, timeout: float) -> SmartEndpoints:
    """The endpoints ``iss`` names (its address is checked by ``policies.iss`` before the read)."""
    url = f"{iss.rstrip('/')}/.well-known/smart-configuration"
    try:
        config = client.request_json("GET", url, time.monotonic() + timeout, policies.iss, server="the FHIR server")
    except FetchError as exc:
        raise SmartError(
            Note(
                "smart.configuration_unread",
                "Could not read the SMART configuration of %(iss)s: %(reason)s",
                iss=iss,
                reason=exc.reason,
            )
        ) from None
    authorize, token = config.get("authorization_endpoint"), config.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise SmartError(
            Note(
                "smart.no_endpoints",
                "The SMART configuration of %(iss)s names no authorization/token endpoint",
                iss=iss,
            )
        )
    endpoints = (
        (Note("smart.authorization_endpoint", "authorization endpoint"), authorize),
        (Note("smart.token_endpoint", "token endpoint"), token),
    )
    for name, endpoint in endpoints:
        try:
            policies.endpoints.check_url(endpoint)
        except FhirServerRefused as exc:
            raise SmartError(
                Note(
                    "smart.endpoint_refused",
                    "The SMART configuration of %(iss)s names a %(endpoint)s that %(reason)s",
                    iss=iss,
                    endpoint=name,
                    reason=exc.reason,
                )
            ) from None
    methods = config.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise SmartError(Note("smart.no_pkce", "%(iss)s does not support PKCE S256, which this app requires", iss=iss))
    return SmartEndpoints(authorize, token)


def authorization_url(
    endpoints: SmartEndpoints,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    iss: str,
    launch: str | None,
) -> tuple[str, str, str]:
    """(URL to send the browser to, state, code_verifier)."""
    verifier = generate_token(64)
    session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256")
    extra = {"aud": iss}
    if launch:
        extra["launch"] = launch
    url, state = session.create_authorization_url(endpoints.authorization_endpoint, code_verifier=verifier, **extra)
    return url, state, verifier


def exchange_code(
    token_endpoint: str,
    *,
    client: FhirClient,
    policies: SmartPolicies,
    client_id: str,
    redirect_uri: str,
    code: str,
    verifier: str,
    timeout: float,
) -> dict:
    """The token response (access_token, patient, encounter, appContext, …): RFC 6749 §4.1.3 with
    the RFC 7636 verifier, from a public client (client_id in the body, no secret)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    try:
        token = client.request_json(
            "POST",
            token_endpoint,
            time.monotonic() + timeout,
            policies.endpoints,
            headers={"Accept": "application/json"},
            data=form,
            server="the authorization server",
        )
    except FetchError as exc:
        raise SmartError(
            Note(
                "smart.code_refused",
                "The authorization server refused the code: %(reason)s",
                reason=exc.reason,
            )
        ) from None
    if not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise SmartError(Note("smart.no_access_token", "The authorization server answered without an access token"))
    return token
