"""A FHIR proxy that rewrites request URLs the way smart-launcher-v2's does.

The SMART launcher (github.com/smart-on-fhir/smart-launcher-v2, backend/routes/fhir/proxy.ts)
forwards ``new URL(fhirServer + req.url).href.replace(/\\/\\s*\\//g, "/")``: every `//` in the
URL it forwards, query included, becomes `/`. A search sent as `code=http://loinc.org|1834-1`
reaches the FHIR server as `code=http:/loinc.org|1834-1` and finds nothing. This proxy applies
the same rule to the request target (path and query; the upstream origin is fixed) and forwards
everything else as it came, so tests can put it between a client and the e2e FHIR server.

Like the launcher, it rewrites the upstream base to its own in response bodies, so links the
FHIR server returns (paging) point back at the proxy.
"""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_DOUBLE_SLASH = re.compile(r"/\s*/")  # the launcher's regular expression
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
TIMEOUT = 10


def collapse_double_slashes(target: str) -> str:
    return _DOUBLE_SLASH.sub("/", target)


class _Server(ThreadingHTTPServer):
    # The service opens one connection per prefetch key at once; the default backlog (5) drops
    # the rest until a SYN retry, after its 1 s connect timeout. Node's own is 511.
    request_queue_size = 128
    daemon_threads = True


class CollapsingProxy:
    """``CollapsingProxy(upstream_base)``: listens on a free loopback port; ``base`` is the
    upstream base's path on the proxy's origin. ``seen`` lists (target received, target sent)."""

    def __init__(self, upstream_base: str):
        upstream = urlsplit(upstream_base)
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                target = collapse_double_slashes(self.path)
                proxy.seen.append((self.path, target))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection = http.client.HTTPConnection(upstream.netloc, timeout=TIMEOUT)
                try:
                    connection.request(self.command, target, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read().replace(upstream_base.encode(), proxy.base.encode())
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *_args) -> None:  # the tests read `seen` instead
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}{upstream.path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> CollapsingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
