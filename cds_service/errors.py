"""One error shape for every non-2xx answer: ``{"error": code, "message": text, "details": [...]}``.

EHR integrators read these bodies when a call fails; a field path in ``details`` tells them
exactly which part of their request to fix.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error with an HTTP status that the view layer turns into a JSON body."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

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
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(_body(exc.code, exc.message, exc.details)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(_body(code, exc.description or exc.name, []))
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(_body("internal_error", "The service failed; see its logs.", [])), 500
