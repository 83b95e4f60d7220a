"""One error shape for every non-2xx answer: ``{"error": code, "message": text, "details": [...]}``.

EHR integrators read these bodies when a call fails; a field path in ``details`` tells them
exactly which part of their request to fix. Every error of this project derives from
``HccCdsError``, answered here in one place: an ``ApiError`` with its own status and message, any
other with a 500 whose text names nothing internal (it was meant to be caught below the views).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from hcc_evidence.errors import HccCdsError


class ApiError(HccCdsError):
    """An error with an HTTP status (and any headers the answer needs) that the view layer turns
    into a JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = dict(headers or {})

    @classmethod
    def from_validation(cls, exc: ValidationError, what: str) -> ApiError:
        details = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "problem": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return cls(400, "invalid_request", f"The {what} is not valid.", details)


def _body(code: str, message: str, details: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return body


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(_body("internal_error", "The service failed; see its logs.", [])), 500

    @app.errorhandler(HccCdsError)
    def _project_error(exc: HccCdsError):
        if not isinstance(exc, ApiError):
            return _unexpected(exc)
        return jsonify(_body(exc.code, exc.message, exc.details)), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(_body(code, exc.description or exc.name, []))
        response.status_code = exc.code or 500
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
