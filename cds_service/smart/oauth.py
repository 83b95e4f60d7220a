"""SMART App Launch 2 client side: endpoint discovery and the PKCE authorization-code flow.

Authlib's ``OAuth2Session`` does the OAuth work (S256 challenge, code exchange); this module
only adds what SMART defines on top: discovery from ``{iss}/.well-known/smart-configuration``
and the ``aud`` / ``launch`` authorization parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session


class SmartError(Exception):
    """Launch or authorization failed; the message is safe to show the user."""


@dataclass(frozen=True)
class SmartEndpoints:
    authorization_endpoint: str
    token_endpoint: str


def discover(iss: str, timeout: float) -> SmartEndpoints:
    url = f"{iss.rstrip('/')}/.well-known/smart-configuration"
    try:
        response = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout)
        response.raise_for_status()
        config = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SmartError(f"Could not read the SMART configuration of {iss}: {exc.__class__.__name__}") from None
    try:
        endpoints = SmartEndpoints(config["authorization_endpoint"], config["token_endpoint"])
    except (KeyError, TypeError):
        raise SmartError(f"The SMART configuration of {iss} names no authorization/token endpoint") from None
    methods = config.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise SmartError(f"{iss} does not support PKCE S256, which this app requires")
    return endpoints


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
    session = OAuth2Session(
        client_id, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256"
    )
    extra = {"aud": iss}
    if launch:
        extra["launch"] = launch
    url, state = session.create_authorization_url(
        endpoints.authorization_endpoint, code_verifier=verifier, **extra
    )
    return url, state, verifier


def exchange_code(
    token_endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    code: str,
    verifier: str,
    timeout: float,
) -> dict:
    """The token response (access_token, patient, encounter, appContext, …)."""
    session = OAuth2Session(client_id, redirect_uri=redirect_uri, token_endpoint_auth_method="none")
    try:
        return dict(
            session.fetch_token(
                token_endpoint, code=code, code_verifier=verifier, timeout=timeout
            )
        )
    except Exception as exc:  # Authlib raises OAuthError or requests errors
        raise SmartError(f"The authorization server refused the code: {exc}") from None
