"""A loopback HTTP server with fixed JSON answers: a JWK Set, a SMART configuration, a Patient.

``routes`` maps a path to its body (a JSON-able value, read at each request, so a test may change
it); ``default`` answers every other path (None: 404). Every path requested is recorded. With
``ssl_context`` it serves HTTPS.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonServer:
    def __init__(
        self,
        routes: dict[str, Any] | None = None,
        default: Any = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.routes = dict(routes or {})
        self.default = default
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                value = owner.routes.get(self.path, owner.default)
                if value is None:
                    self.send_error(404)
                    return
                body = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}"
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JsonServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def es384_jwks(public_key, kid: str) -> dict[str, Any]:
    """The JWK Set of one ES384 public key, as an EHR publishes it."""
    from jwt.algorithms import ECAlgorithm

    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "alg": "ES384", "use": "sig"}]}
