"""The OpenAPI 3.1 description of this service (``cds_service/openapi.yaml``), served at
``GET /openapi.json`` and ``GET /openapi.yaml`` for integrators and for property-based fuzzing."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def description() -> dict:
    return yaml.safe_load(_text())


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(description())


@bp.get("/openapi.yaml")
def openapi_yaml():
    return Response(_text(), mimetype="application/yaml")
