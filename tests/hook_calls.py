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


def post_hook(server, body: dict[str, Any], service: str) -> dict[str, Any]:
    response = requests.post(f"{server.url}/cds-services/{service}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    payload = response.json()
    jsonschema.validate(payload, SCHEMA)
    for card in payload["cards"]:
        assert len(card["summary"]) < 140
        assert DOI in card["detail"], "every card cites the study"
        assert any(DOI in link["url"] for link in card["links"])
    return payload
