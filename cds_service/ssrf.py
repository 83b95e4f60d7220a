"""Server-side request forgery guard for ``fhirServer``: the service sends the EHR's bearer token
to whatever base URL a hook call names, so that URL must be one we trust.

Rules (CDS Hooks 2.0 lets any caller name a ``fhirServer``; we do not follow it blindly):

- ``http`` or ``https`` only; ``https`` only in production; no ``user:password@`` in the URL.
- ``CDS_FHIR_SERVER_ALLOWLIST`` (required in production): the URL must start with an allowed base
  on the same scheme, host and port, and its path must be that base's path or below it
  (``https://fhir.example.org/r4`` allows ``.../r4`` and ``.../r4/x``, not ``.../r4x``).
- Addresses never fetched, even in demo: link-local (169.254.0.0/16 and fe80::/10, where cloud
  metadata services live), ``metadata.google.internal``, unspecified, multicast and reserved
  addresses. Loopback (127.0.0.0/8, ::1, ``localhost``) is allowed in demo, where the tests and the
  local harness run their FHIR servers, and refused in production.
- Checked twice: the URL as written on every hook call (cheap, no DNS: a refused server is a bad
  request, answered 400 naming ``fhirServer``), and the addresses its host resolves to before the
  first fetch and for every page link (a name resolving to a metadata address is refused too).
  Redirects are never followed (``allow_redirects=False`` in the FHIR client).

A residual risk stays: DNS may answer differently between our check and the connection (DNS
rebinding). In production the allowlist names the hospital's FHIR server, which closes it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, request

from fhir_mappers.notes import Note
from hcc_evidence.errors import HccCdsError

from .errors import ApiError

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
_LOOPBACK_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FhirServerRefused(HccCdsError, ValueError):
    """``fhirServer`` is not a server this service may call; ``reason`` is safe to show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FhirServerPolicy:
    allowlist: tuple[str, ...] = ()
    production: bool = False

    @classmethod
    def from_settings(cls, settings) -> FhirServerPolicy:
        return cls(tuple(settings.fhir_server_allowlist), settings.environment == "production")

    @property
    def allow_loopback(self) -> bool:
        return not self.production

    def check_url(self, url: str) -> None:
        """The URL as written: scheme, credentials, allowlist, literal addresses. No DNS."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise FhirServerRefused(Note("ssrf.invalid_url", "is not a valid URL")) from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise FhirServerRefused(Note("ssrf.not_http", "must be an http(s) URL"))
        if self.production and scheme != "https":
            raise FhirServerRefused(Note("ssrf.not_https", "must use https"))
        if parts.username is not None or parts.password is not None:
            raise FhirServerRefused(Note("ssrf.credentials", "must not carry credentials in the URL"))
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise FhirServerRefused(Note("ssrf.no_host", "has no host"))
        if self.allowlist and not any(_within(parts, port, base) for base in self.allowlist):
            raise FhirServerRefused(Note("ssrf.not_allowed", "is not on this service's FHIR server allowlist"))
        if host in _METADATA_HOSTS:
            raise FhirServerRefused(Note("ssrf.metadata_host", "names a cloud metadata host"))
        if host in _LOOPBACK_HOSTS and not self.allow_loopback:
            raise FhirServerRefused(Note("ssrf.loopback_host", "names a loopback host"))
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: its addresses are checked before fetching (check_resolved)
        self._check_address(address)

    def check_resolved(self, url: str) -> None:
        """Every address the URL's host resolves to. A name that does not resolve passes: the
        fetch then fails as unreachable, which the card reports."""
        self.check_url(url)
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS[parts.scheme.lower()]
        try:
            infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        for info in infos:
            self._check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]))

    def _check_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local:
            raise FhirServerRefused(Note("ssrf.link_local", "resolves to a link-local (cloud metadata) address"))
        if address == ipaddress.ip_address("fd00:ec2::254"):
            raise FhirServerRefused(Note("ssrf.metadata_address", "resolves to a cloud metadata address"))
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            raise FhirServerRefused(Note("ssrf.not_a_server", "resolves to an address that is not a server"))
        if address.is_loopback and not self.allow_loopback:
            raise FhirServerRefused(Note("ssrf.loopback_address", "resolves to a loopback address"))


def _within(parts, port: int | None, base: str) -> bool:
    allowed = urlsplit(base)
    if allowed.scheme.lower() != parts.scheme.lower():
        return False
    if (allowed.hostname or "").rstrip(".").lower() != (parts.hostname or "").rstrip(".").lower():
        return False
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if (allowed.port or default) != (port or default):
        return False
    prefix = allowed.path.rstrip("/")
    return parts.path == prefix or parts.path.startswith(prefix + "/") or (not prefix and not parts.path)


def refused(reason: str) -> ApiError:
    return ApiError(
        400,
        "fhir_server_not_allowed",
        f"fhirServer {reason}; this service will not send the FHIR access token there.",
        [{"field": "fhirServer", "problem": reason}],
    )


def init_app(app: Flask, policy: FhirServerPolicy) -> None:
    """Check ``fhirServer`` as written on every hook call, the fast path included, so that the
    same request gets the same answer whatever was ordered (Flask caches the parsed body)."""

    @app.before_request
    def _check_fhir_server() -> None:
        if request.endpoint != "hooks.call_service":
            return
        body = request.get_json(silent=True)
        server = body.get("fhirServer") if isinstance(body, dict) else None
        if isinstance(server, str):
            try:
                policy.check_url(server)
            except FhirServerRefused as exc:
                raise refused(exc.reason) from None
