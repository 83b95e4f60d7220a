"""JWT authentication of the calling CDS Client (CDS Hooks 2.0 §Trusting CDS Clients).

Every call to discovery, a service or its feedback endpoint carries ``Authorization: Bearer <JWT>``
signed with the client's private key. We trust only the issuers we were configured with (``iss`` →
their JWKS URL), fetch a ``jku`` only if it is allowlisted, accept only asymmetric algorithms, bind
the token to the exact endpoint URL (``aud``) and refuse a ``jti`` seen before, so a captured token
cannot be replayed against this or another service.

Tokens are never logged nor echoed in answers: a failure says *what* was wrong, never the token.
"""

from __future__ import annotations

import heapq
import logging
import ssl
import threading
import time
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask, request

from .errors import ApiError
from .settings import Settings
from .store import StoreUnavailable

log = logging.getLogger(__name__)

# JWKS fetches: a slow key server must not hold a worker for long; keys are re-read every 5 minutes
# so a rotated or revoked key takes effect without a restart.
JWKS_TIMEOUT_SECONDS = 3.0
JWKS_CACHE_SECONDS = 300
JWKS_REFRESH_COOLDOWN_SECONDS = 30.0

# CDS Hooks 2.0 §JWT Signing Algorithm: never `none`, never a symmetric (HMAC) algorithm.
_ASYMMETRIC_PREFIXES = ("RS", "PS", "ES", "EdDSA", "Ed25519", "Ed448")
# The public-key type each algorithm family verifies with (by the alg's first two letters).
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS": (rsa.RSAPublicKey,),
    "PS": (rsa.RSAPublicKey,),
    "ES": (ec.EllipticCurvePublicKey,),
    "Ed": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}

_PROTECTED_PREFIX = "/cds-services"


class InvalidToken(ApiError):
    """A 401 whose answer also carries ``WWW-Authenticate`` (RFC 6750 §3)."""

    def __init__(self, message: str):
        super().__init__(401, "invalid_token", message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class ReplayGuard(Protocol):
    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool: ...


class ReplayCache:
    """``jti`` values seen, each kept until its token expires, in this process only.

    The service passes its database store instead (``JwtReplayStore.first_use``), which every
    worker and replica shares; this in-process cache serves a verifier used on its own.
    """

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str], float] = {}
        self._by_expiry: list[tuple[float, tuple[str, str]]] = []  # heap: oldest expiry first
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        key = (issuer, jti)
        with self._lock:
            while self._by_expiry and self._by_expiry[0][0] <= now:
                _, old = heapq.heappop(self._by_expiry)
                if self._expiry.get(old, now + 1) <= now:
                    del self._expiry[old]
            if key in self._expiry:
                return False
            self._expiry[key] = expires_at
            heapq.heappush(self._by_expiry, (expires_at, key))
            return True


class JwtVerifier:
    """Verify a CDS Client's bearer JWT against the configured issuers and this endpoint's URL."""

    def __init__(self, settings: Settings, replays: ReplayGuard | None = None):
        symmetric = [a for a in settings.jwt_algorithms if not a.startswith(_ASYMMETRIC_PREFIXES)]
        if symmetric:
            raise ValueError(f"CDS_JWT_ALGORITHMS must be asymmetric; refusing {symmetric}")
        if not settings.jwt_issuers:
            raise ValueError("JWT is enforced but CDS_JWT_ISSUERS names no trusted issuer")
        self.settings = settings
        self.algorithms = list(settings.jwt_algorithms)
        self.replays: ReplayGuard = replays or ReplayCache()
        self._clients: dict[str, jwt.PyJWKClient] = {}
        # CDS_CA_BUNDLE: a JWKS behind the hospital's internal CA verifies like the FHIR server does.
        self._ssl_context = ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else None
        self._clients_lock = threading.Lock()

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """Return the token's claims, or raise ``InvalidToken`` saying what was wrong."""
        s = self.settings
        if len(token.encode("utf-8", "replace")) > s.jwt_max_token_bytes:
            raise InvalidToken(f"The bearer token exceeds {s.jwt_max_token_bytes} bytes.")
        try:
            # One parse for the header and the issuer (two calls parsed it twice; bench/README.md).
            unverified_token = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidToken("The bearer token is not a well-formed JWT.") from None
        header, unverified = unverified_token["header"], unverified_token["payload"]

        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"JWT alg '{alg}' is not accepted; use one of {self.algorithms}.")
        typ = header.get("typ")
        if typ is not None and str(typ).upper() != "JWT":
            raise InvalidToken("JWT header typ must be 'JWT'.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("JWT header kid is required.")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in s.jwt_issuers:
            raise InvalidToken("JWT iss is missing or not a trusted CDS Client.")
        jku = header.get("jku")
        if jku is not None and jku not in s.jwt_jku_allowlist:
            # Checked before any network call: an attacker must not make us fetch their URL.
            raise InvalidToken("JWT header jku is not an allowlisted JWK Set URL.")
        jwks_url = jku or s.jwt_issuers[issuer]

        key = self._signing_key(jwks_url, kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=s.jwt_leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_nbf": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"JWT claim '{exc.claim}' is required.") from None
        except jwt.ExpiredSignatureError:
            raise InvalidToken("JWT has expired (exp).") from None
        except jwt.InvalidIssuedAtError:
            raise InvalidToken("JWT iat must be a number (seconds since the epoch).") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("JWT is not valid yet (iat or nbf is in the future).") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"JWT aud must be this endpoint's URL: {audience}") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("JWT signature does not verify with the issuer's key.") from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
            raise InvalidToken(f"JWT key '{kid}' cannot verify alg '{alg}'.") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"JWT is not valid ({type(exc).__name__}).") from None

        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise InvalidToken("JWT iat must be a number (seconds since the epoch).")
        if iat < time.time() - s.jwt_max_age_seconds - s.jwt_leeway_seconds:
            raise InvalidToken(f"JWT was issued more than {s.jwt_max_age_seconds} s ago (iat).")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise InvalidToken("JWT jti must be a non-empty string.")
        try:
            first = self.replays.first_use(issuer, jti, float(claims["exp"]) + s.jwt_leeway_seconds)
        except StoreUnavailable:
            # Fail closed: without the shared record a replay cannot be ruled out.
            raise ApiError(
                503, "replay_store_unavailable", "Token replay cannot be checked now; retry later."
            ) from None
        if not first:
            raise InvalidToken("JWT jti was already used (replay).")
        return claims

    def _signing_key(self, jwks_url: str, kid: str, alg: str) -> Any:
        client = self._client(jwks_url)
        try:
            jwk = client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            # The reason (e.g. CERTIFICATE_VERIFY_FAILED: see CDS_CA_BUNDLE), never the token.
            log.warning("JWKS fetch failed for %s: %s", jwks_url, exc.__cause__ or exc)
            raise InvalidToken("The issuer's JWK Set could not be retrieved.") from None
        except jwt.PyJWKClientError:
            raise InvalidToken(f"JWT kid '{kid}' is not in the issuer's JWK Set.") from None
        declared = jwk._jwk_data.get("alg")  # PyJWK keeps the JWK it came from
        if declared and declared != alg:
            raise InvalidToken(f"JWT key '{kid}' is published for alg '{declared}', not '{alg}'.")
        # A JWK may name no alg: an ES384 token naming an RSA key must be refused here, since the
        # verifier would fail on the key type with an error that is not a PyJWTError.
        if not isinstance(jwk.key, _KEY_TYPES[alg[:2]]):
            raise InvalidToken(f"JWT key '{kid}' cannot verify alg '{alg}'.")
        # The raw key, not the PyJWK: PyJWK guesses RS256 for an RSA JWK without "alg".
        return jwk.key

    def _client(self, jwks_url: str) -> jwt.PyJWKClient:
        with self._clients_lock:
            client = self._clients.get(jwks_url)
            if client is None:
                client = jwt.PyJWKClient(
                    jwks_url,
                    cache_jwk_set=True,
                    lifespan=JWKS_CACHE_SECONDS,
                    timeout=JWKS_TIMEOUT_SECONDS,
                    cooldown_duration=JWKS_REFRESH_COOLDOWN_SECONDS,
                    ssl_context=self._ssl_context,
                )
                self._clients[jwks_url] = client
            return client


def expected_audience(settings: Settings) -> str:
    """The URL the client called: the public base URL when configured (behind a proxy), else ours."""
    base = settings.public_base_url.rstrip("/") if settings.public_base_url else request.url_root.rstrip("/")
    return base + request.path


def install(app: Flask, settings: Settings, replays: ReplayGuard | None = None) -> JwtVerifier:
    """Require a valid bearer JWT on discovery, service and feedback calls; probes and preflight stay open.
    ``CDS_DISCOVERY_REQUIRES_JWT=false`` opens discovery (``GET /cds-services``) alone: the service list."""
    verifier = JwtVerifier(settings, replays)

    @app.before_request
    def _require_jwt() -> None:
        if request.method == "OPTIONS":
            return None
        path = request.path
        if path != _PROTECTED_PREFIX and not path.startswith(_PROTECTED_PREFIX + "/"):
            return None
        if path == _PROTECTED_PREFIX and not settings.discovery_requires_jwt:
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("An 'Authorization: Bearer <JWT>' header is required.")
        claims = verifier.verify(token.strip(), expected_audience(settings))
        log.info("authenticated CDS client", extra={"event": "auth_success", "issuer": claims["iss"]})
        return None

    return verifier
