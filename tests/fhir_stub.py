"""A FHIR server stand-in on 127.0.0.1 for prefetch-fallback tests: real HTTP, switchable misbehaviour.

``FhirStub(behaviour="ok")`` answers every read or search with a plausible FHIR resource (a Patient
for ``Patient/<id>``, a searchset Bundle otherwise). Other behaviours model what a real EHR FHIR
server does on a bad day:

==========  ===================================================================
ok          200 with ``application/fhir+json``
slow        sleeps ``slow_seconds`` and then answers like ``ok``
hang        accepts the connection and never answers (until the stub closes)
down        nothing listens on the port (connection refused)
401         ``401`` with an OperationOutcome
500         ``500`` with an OperationOutcome
malformed   200 with a body that is not JSON
html        200 ``text/html`` login page (a proxy or SSO in front of the server)
huge        200 with a valid but ``huge_bytes``-sized Bundle
redirect    ``302`` to ``redirect_to`` (another host)
drip        200 headers, then one byte of the body every ``drip_seconds`` (until the stub closes)
gzip        200 with the ``huge_bytes`` Bundle gzip-compressed (``Content-Encoding: gzip``)
==========  ===================================================================

``behaviours`` maps a resource type (``"Patient"``, ``"Observation"``...) to a behaviour that
overrides the default for that type. ``resources`` maps ``"Type/id"`` to the resource an instance
read of it answers (e.g. a Medication with its code). Every request is recorded with its path,
query and ``Authorization`` header.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BEHAVIOURS = ("ok", "slow", "hang", "down", "401", "500", "malformed", "html", "huge", "redirect", "drip", "gzip")


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # without the leading slash, e.g. "Observation"
    query: dict[str, list[str]]
    authorization: str | None

    @property
    def resource_type(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def relative_url(self) -> str:
        return self.path + (
            "?" + "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs) if self.query else ""
        )


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the service opens one connection per prefetch key at once

    def handle_error(self, request, client_address) -> None:
        pass  # clients that give up mid-answer (budget ran out) are the point of these tests


def _outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


class FhirStub:
    def __init__(
        self,
        behaviour: str = "ok",
        *,
        behaviours: dict[str, str] | None = None,
        slow_seconds: float = 3.0,
        huge_bytes: int = 4 * 1024 * 1024,
        redirect_to: str = "http://localhost:9/fhir",
        resources: dict[str, dict] | None = None,
        drip_seconds: float = 0.2,
    ):
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour
        self.behaviours = dict(behaviours or {})
        self.slow_seconds = slow_seconds
        self.huge_bytes = huge_bytes
        self.redirect_to = redirect_to
        self.resources = dict(resources or {})
        self.drip_seconds = drip_seconds
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        wanted = {behaviour, *self.behaviours.values()}
        self.huge_body = _huge_bundle(huge_bytes) if wanted & {"huge", "gzip"} else b""

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FhirStub:
        if self.behaviour == "down":
            # Reserve a free port, then release it: nothing listens there afterwards.
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/fhir"
            return self
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}/fhir"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self._closing.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- observations ------------------------------------------------------------------------

    def seen(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def behaviour_for(self, resource_type: str) -> str:
        return self.behaviours.get(resource_type, self.behaviour)

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path.removeprefix("/fhir").lstrip("/")
                request = RecordedRequest(path, parse_qs(parts.query), self.headers.get("Authorization"))
                with stub._lock:
                    stub.requests.append(request)
                behaviour = stub.behaviour_for(request.resource_type)
                if behaviour == "hang":
                    stub._closing.wait(timeout=60)
                    return
                if behaviour == "slow":
                    if stub._closing.wait(timeout=stub.slow_seconds):
                        return
                if behaviour == "401":
                    return self._json(401, _outcome("login", "token rejected"))
                if behaviour == "500":
                    return self._json(500, _outcome("exception", "database down"))
                if behaviour == "malformed":
                    return self._raw(200, "application/fhir+json", b'{"resourceType": "Bundle", "entry": [')
                if behaviour == "html":
                    return self._raw(200, "text/html", b"<!doctype html><html><body>Sign in</body></html>")
                if behaviour == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{stub.redirect_to}/{request.relative_url}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if behaviour == "huge":
                    return self._raw(200, "application/fhir+json", stub.huge_body)
                if behaviour == "gzip":
                    return self._raw(200, "application/fhir+json", gzip.compress(stub.huge_body), "gzip")
                if behaviour == "drip":
                    return self._drip(json.dumps(_resource_for(request)).encode() + b" " * 10_000)
                return self._json(200, stub.resources.get(request.path) or _resource_for(request))

            def _json(self, status: int, body: dict) -> None:
                self._raw(status, "application/fhir+json", json.dumps(body).encode())

            def _drip(self, body: bytes) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if stub._closing.wait(timeout=stub.drip_seconds):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _raw(self, status: int, content_type: str, body: bytes, encoding: str | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    if encoding:
                        self.send_header("Content-Encoding", encoding)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its budget ran out): expected

            def log_message(self, *_args) -> None:
                pass

        return Handler


def _huge_bundle(size: int) -> bytes:
    """A valid searchset Bundle of at least ``size`` bytes, built once (not per request)."""
    entry = json.dumps({"resource": {"resourceType": "Observation", "id": "o", "note": [{"text": "x" * 1000}]}})
    count = size // len(entry) + 1
    return ('{"resourceType": "Bundle", "type": "searchset", "entry": [' + ", ".join([entry] * count) + "]}").encode()


def _resource_for(request: RecordedRequest) -> dict:
    if "/" in request.path:  # instance read, e.g. Patient/123
        resource_type, _, resource_id = request.path.partition("/")
        if resource_type == "Patient":
            return {"resourceType": "Patient", "id": resource_id, "gender": "male", "birthDate": "1961-05-02"}
        return {"resourceType": resource_type, "id": resource_id}
    return {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
