"""One CDS Hooks call to the live service, with the checks every answer must pass (schema,
summary length, the study's DOI in each card): shared by the card tests and the vignettes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import requests

DOI = "10.1177/17588359241299678"
SCHEMA = json.loads(
    (Path(__file__).parent / "cds_service" / "schemas" / "cds-hooks-2.0-response.schema.json").read_text()
)
# Built once: jsonschema.validate checks the schema itself on every call (~60 ms a response).
jsonschema.validators.validator_for(SCHEMA).check_schema(SCHEMA)
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)


def post_hook(server, body: dict[str, Any], service: str) -> dict[str, Any]:
    response = requests.post(f"{server.url}/cds-services/{service}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    payload = response.json()
    check_response(payload)
    return payload


def check_response(payload: Any) -> None:
    """A valid CDS Hooks 2.0 response whose cards keep to our rules."""
    VALIDATOR.validate(payload)
    for card in payload["cards"]:
        assert len(card["summary"]) < 140
        assert DOI in card["detail"], "every card cites the study"
        assert any(DOI in link["url"] for link in card["links"])
