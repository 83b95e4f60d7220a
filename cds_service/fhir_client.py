"""Outbound HTTP to FHIR and SMART authorization servers: prefetch keys the EHR did not send, the
SMART launch's discovery and token exchange, and the SMART app's reads.

One ``requests.Session`` per process with a bounded connection pool. Every call has one deadline
for the whole call (connect, headers and every byte of the body: the socket's timeout is set to
the time left before each read, so a server dripping a byte a second is cut off at the deadline,
not after a per-read timeout that each byte resets), a byte cap counted on the wire and after
gzip, no redirects, and the SSRF policy checked on every URL before a token or a PKCE verifier is
sent. A slow, hanging or hostile server costs at most its deadline and never a stuck worker.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from fhir_mappers.notes import Note
from hcc_evidence.errors import HccCdsError

from .ssrf import FhirServerPolicy, FhirServerRefused

_CHUNK = 64 * 1024


# Who failed to answer, as a fetch error names it (a Note: the cards word it).
_THE_SERVER = Note("fetch.the_server", "the server")
_THE_FHIR_SERVER = Note("fetch.the_fhir_server", "the FHIR server")


class FetchError(HccCdsError):
    """An outbound call that could not be answered; ``reason`` is safe to show in a card,
    ``status`` is the HTTP status when the server answered with an error."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class FetchOutcome:
    key: str
    resource: dict[str, Any] | None
    error: str | None = None
    status: int | None = None  # the HTTP status of an error answer


class FhirClient:
    def __init__(
        self,
        *,
        max_bytes: int,
        max_pages: int,
        workers: int,
        policy: FhirServerPolicy | None = None,
        ca_bundle: Path | None = None,
    ):
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.policy = policy or FhirServerPolicy()  # demo rules by default: metadata addresses refused
        # urllib3 writes every request line, FHIR queries with patient ids included, at DEBUG:
        # keep it quiet even when the service's own logs are turned up to DEBUG.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
        self.session = requests.Session()
        # CDS_CA_BUNDLE (e.g. the hospital's internal CA); passed on every call, since requests lets
        # REQUESTS_CA_BUNDLE override a session's own verify.
        self.session.verify = str(ca_bundle) if ca_bundle else True
        adapter = HTTPAdapter(pool_connections=workers, pool_maxsize=workers, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/fhir+json, application/json;q=0.9"
        self.session.headers["Accept-Encoding"] = "gzip"  # the one encoding _read_capped inflates
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-fetch")

    def fetch_all(
        self,
        base: str,
        queries: dict[str, str],
        token: str | None,
        budget_seconds: float,
        policy: FhirServerPolicy | None = None,
    ) -> dict[str, FetchOutcome]:
        """Run every query in parallel; whatever is not back within the budget is reported missing.
        ``policy``: the rules for ``base`` (default: the ``fhirServer`` policy)."""
        deadline = time.monotonic() + budget_seconds
        policy = policy or self.policy
        futures = {
            self.executor.submit(self._fetch_one, base, query, token, deadline, policy): key
            for key, query in queries.items()
        }
        done, _ = wait(futures, timeout=budget_seconds)
        outcomes: dict[str, FetchOutcome] = {}
        for future, key in futures.items():
            if future not in done:
                future.cancel()
                outcomes[key] = FetchOutcome(key, None, "the FHIR server did not answer in time")
                continue
            try:
                outcomes[key] = FetchOutcome(key, future.result())
            except FetchError as exc:
                outcomes[key] = FetchOutcome(key, None, exc.reason, exc.status)
            except Exception:  # a hostile answer must cost its key, never the whole call
                logging.getLogger(__name__).exception("unexpected error reading a FHIR answer")
                outcomes[key] = FetchOutcome(key, None, "the FHIR server's answer could not be read")
        return outcomes

    def _fetch_one(self, base: str, query: str, token: str | None, deadline: float, policy: FhirServerPolicy) -> dict:
        url = urljoin(base.rstrip("/") + "/", query)
        first = self.get_fhir(url, token, deadline, policy)
        if first.get("resourceType") != "Bundle":
            return first
        # Follow paging only while budget remains, and only on the same server.
        entries = bundle_entries(first)
        next_url = next_page(first, base)
        pages = 1
        while next_url and pages < self.max_pages:
            page = self.get_fhir(next_url, token, deadline, policy)
            entries.extend(bundle_entries(page))
            next_url = next_page(page, base)
            pages += 1
        return {**first, "entry": entries}

    def get_fhir(self, url: str, token: str | None, deadline: float, policy: FhirServerPolicy) -> dict:
        """One FHIR resource (a Bundle, a Medication, …); an OperationOutcome is an error."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resource = self.request_json("GET", url, deadline, policy, headers=headers, server=_THE_FHIR_SERVER)
        if "resourceType" not in resource:
            raise FetchError(Note("fetch.not_fhir", "the FHIR server answered with JSON that is not a FHIR resource"))
        if resource["resourceType"] == "OperationOutcome":
            raise FetchError(Note("fetch.operation_outcome", "the FHIR server answered with an OperationOutcome"))
        return resource

    def request_json(
        self,
        method: str,
        url: str,
        deadline: float,
        policy: FhirServerPolicy,
        *,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        server: str = _THE_SERVER,
    ) -> dict:
        """A JSON object from ``url``, within ``deadline`` (``time.monotonic()``) and the byte cap."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(Note("fetch.budget", "the fetch budget ran out"))
        try:
            policy.check_resolved(url)  # every URL: a next link or a discovered endpoint may point anywhere
        except FhirServerRefused as exc:
            raise FetchError(
                Note("fetch.refused", "the address of %(server)s was refused (%(why)s)", server=server, why=exc.reason)
            ) from None
        try:
            with self.session.request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=(min(remaining, 1.0), remaining),
                verify=self.session.verify,
                stream=True,
                allow_redirects=False,
            ) as response:
                if response.is_redirect:
                    raise FetchError(
                        Note(
                            "fetch.redirected",
                            "%(server)s redirected (HTTP %(status)s)",
                            server=server,
                            status=response.status_code,
                        )
                    )
                if response.status_code != 200:
                    raise FetchError(
                        Note(
                            "fetch.http_status",
                            "%(server)s answered HTTP %(status)s",
                            server=server,
                            status=response.status_code,
                        ),
                        response.status_code,
                    )
                body = self._read_capped(response, deadline)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, requests.exceptions.SSLError):  # the card says SSLError: the log says why
                logging.getLogger(__name__).warning(
                    "TLS with %s failed (trust an internal CA with CDS_CA_BUNDLE): %s", _origin(url), _tls_reason(exc)
                )
            if time.monotonic() >= deadline - 0.05:  # the socket timed out because the deadline came
                raise FetchError(
                    Note("fetch.budget_waiting", "the fetch budget ran out waiting for %(server)s", server=server)
                ) from None
            raise FetchError(
                Note(
                    "fetch.unreachable",
                    "%(server)s could not be reached (%(error)s)",
                    server=server,
                    error=type(exc).__name__,
                )
            ) from None
        try:
            value = json.loads(body)
        except ValueError:
            raise FetchError(
                Note("fetch.not_json", "%(server)s answered with something that is not JSON", server=server)
            ) from None
        if not isinstance(value, dict):
            raise FetchError(
                Note("fetch.not_object", "%(server)s answered with JSON that is not an object", server=server)
            )
        return value

    def _read_capped(self, response: requests.Response, deadline: float) -> bytes:
        """The body as sent, read with the socket's timeout set to the time left before each read;
        gzip (the only encoding asked for) is inflated afterwards under the same cap."""
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise FetchError(
                Note(
                    "fetch.encoding",
                    "the answer is encoded as %(encoding)s, which was not asked for",
                    encoding=repr(encoding),
                )
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(Note("fetch.budget_reading", "the fetch budget ran out while reading"))
            _set_read_timeout(response.raw, remaining)
            chunk = response.raw.read1(_CHUNK, decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(Note("fetch.too_big", "the answer exceeded %(bytes)s bytes", bytes=self.max_bytes))
            chunks.append(chunk)
        body = b"".join(chunks)
        return _gunzip(body, self.max_bytes) if encoding == "gzip" else body


def _set_read_timeout(raw: urllib3.BaseHTTPResponse, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise FetchError(Note("fetch.gzip", "the answer's gzip encoding is broken")) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise FetchError(
            Note("fetch.too_big_inflated", "the answer exceeded %(bytes)s bytes once inflated", bytes=max_bytes)
        )
    return data


def bundle_entries(bundle: dict) -> list:
    """A searchset's entries; a missing or malformed ``entry`` is none."""
    entries = bundle.get("entry")
    return list(entries) if isinstance(entries, list) else []


def next_page(bundle: dict, base: str) -> str | None:
    """The searchset's ``next`` link, only while it stays on ``base``'s server (scheme, host, port)."""
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"] if link["url"] and _same_origin(link["url"], base) else None
    return None


def _origin(url: str) -> str:
    """scheme://host:port only: FHIR queries carry patient ids, which stay out of the logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _tls_reason(exc: BaseException) -> str:
    """The ssl module's own words (e.g. "certificate verify failed: self-signed certificate"), found
    in the exception chain; requests' message repeats the URL with its query."""
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or current in seen:
            continue
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return str(current.reason or current)
        seen.append(current)
        pending += [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
    return type(exc).__name__


def _same_origin(url: str, base: str) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(base)
    except ValueError:
        return False
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
