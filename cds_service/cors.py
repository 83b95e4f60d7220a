"""CORS for browser callers (the public CDS Hooks sandbox), applied by this app's own response hook.

flask-cors works out the headers (allowed origin, preflight, exposed headers). The hook asks it
only when the request carries an Origin header: browsers always send one on these calls, and the
EHR's server-to-server calls, which never do, skip the cost of finding that nothing applies.
``/metrics`` (operational data, for the scraper only) is never exposed to browsers.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors.core import get_cors_options, set_cors_headers

from .observability import REQUEST_ID_HEADER

NOT_FOR_BROWSERS = "/metrics"


def init_app(app: Flask, origins: list[str]) -> None:
    options = get_cors_options(
        app,
        {
            "origins": origins,
            "always_send": False,
            "allow_headers": ["Authorization", "Content-Type", REQUEST_ID_HEADER],
            "expose_headers": [REQUEST_ID_HEADER],
        },
    )

    @app.after_request
    def _cors(response: Response) -> Response:
        if "HTTP_ORIGIN" not in request.environ or request.path.startswith(NOT_FOR_BROWSERS):
            return response
        return set_cors_headers(response, options)
