"""The e2e stack's FHIR server (``stack``, from tests/e2e/conftest.py), and a stand-in Pushgateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from e2e.conftest import stack  # noqa: F401  (the session's FHIR server, shared with the e2e tests)


class Pushgateway:
    """A loopback HTTP server that accepts what ``push_to_gateway`` sends (PUT /metrics/job/<job>)
    and records each request's method, path and body, as a real Pushgateway would store it."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                owner.pushes.append(("PUT", self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def pushgateway() -> Iterator[Pushgateway]:
    gateway = Pushgateway()
    try:
        yield gateway
    finally:
        gateway.close()
