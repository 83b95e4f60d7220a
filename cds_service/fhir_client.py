"""Outbound FHIR reads for prefetch keys the EHR did not send.

One ``requests.Session`` per process with a bounded connection pool; every call has an explicit
deadline, a byte cap and no cross-host redirects, so a slow, hanging or hostile FHIR server can
cost at most the fetch budget and never a stuck worker.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .ssrf import FhirServerPolicy, FhirServerRefused

_CHUNK = 64 * 1024


class FetchError(Exception):
    """A prefetch query that could not be answered; ``reason`` is safe to show in a card."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchOutcome:
    key: str
    resource: dict[str, Any] | None
    error: str | None = None


class FhirClient:
    def __init__(self, *, max_bytes: int, max_pages: int, workers: int, policy: FhirServerPolicy | None = None):
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.policy = policy or FhirServerPolicy()  # demo rules by default: metadata addresses refused
        # urllib3 writes every request line, FHIR queries with patient ids included, at DEBUG:
        # keep it quiet even when the service's own logs are turned up to DEBUG.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=workers, pool_maxsize=workers, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/fhir+json, application/json;q=0.9"
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-fetch")

    def fetch_all(
        self, base: str, queries: dict[str, str], token: str | None, budget_seconds: float
    ) -> dict[str, FetchOutcome]:
        """Run every query in parallel; whatever is not back within the budget is reported missing."""
        deadline = time.monotonic() + budget_seconds
        futures = {
            self.executor.submit(self._fetch_one, base, query, token, deadline): key
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
                outcomes[key] = FetchOutcome(key, None, exc.reason)
        return outcomes

    def _fetch_one(self, base: str, query: str, token: str | None, deadline: float) -> dict:
        url = urljoin(base.rstrip("/") + "/", query)
        first = self._get_json(url, base, token, deadline)
        if first.get("resourceType") != "Bundle":
            return first
        # Follow paging only while budget remains, and only on the same server.
        entries = list(first.get("entry") or [])
        next_url = _next_link(first)
        pages = 1
        while next_url and pages < self.max_pages and _same_origin(next_url, base):
            page = self._get_json(next_url, base, token, deadline)
            entries.extend(page.get("entry") or [])
            next_url = _next_link(page)
            pages += 1
        return {**first, "entry": entries}

    def _get_json(self, url: str, base: str, token: str | None, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("the fetch budget ran out")
        try:
            self.policy.check_resolved(url)  # every page too: a next link may point anywhere
        except FhirServerRefused as exc:
            raise FetchError(f"the FHIR server address was refused ({exc.reason})") from None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with self.session.get(
                url,
                headers=headers,
                timeout=(min(remaining, 1.0), remaining),
                stream=True,
                allow_redirects=False,
            ) as response:
                if response.is_redirect:
                    raise FetchError(f"the FHIR server redirected (HTTP {response.status_code})")
                if response.status_code != 200:
                    raise FetchError(f"the FHIR server answered HTTP {response.status_code}")
                body = self._read_capped(response, deadline)
        except requests.RequestException as exc:
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        try:
            resource = json.loads(body)
        except ValueError:
            raise FetchError("the FHIR server answered with something that is not JSON") from None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise FetchError("the FHIR server answered with JSON that is not a FHIR resource")
        if resource["resourceType"] == "OperationOutcome":
            raise FetchError("the FHIR server answered with an OperationOutcome")
        return resource

    def _read_capped(self, response: requests.Response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"the FHIR server's answer exceeded {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("the fetch budget ran out while reading")
            chunks.append(chunk)
        return b"".join(chunks)


def _next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
