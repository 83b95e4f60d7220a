"""A few clinical vignettes through the EHR simulator against the real FHIR server: the record is
stored on the server, the EHR fills the prefetch from the discovery templates (or sends none, so
the service fetches), and the cards must say what tests/vignettes/vignettes.yaml expects.

One difference from the HTTP vignettes is real and checked: the vignettes' Child-Pugh class is an
Observation coded by text only, which no code-based prefetch search returns. Here the class is
therefore unknown, and every offered suggestion must say to check it first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import requests

VIGNETTES_DIR = Path(__file__).resolve().parent.parent / "vignettes"
sys.path.insert(0, str(VIGNETTES_DIR))

import make_bundles  # noqa: E402
from test_vignettes import STARTSWITH, check_card  # noqa: E402

SERVICE = "hcc-systemic-therapy-select"
THROUGH_THE_EHR = ["v01", "v09", "v32", "v41", "v44", "v50"]
BY_ID = {v["id"]: v for v in make_bundles.load_vignettes()}


@pytest.fixture(scope="module")
def stored(stack) -> dict[str, tuple[str, dict]]:
    """Vignette id -> (patient id, draft order), each record stored on the FHIR server by PUT."""
    out = {}
    for vignette_id in THROUGH_THE_EHR:
        bundle = json.loads((VIGNETTES_DIR / "bundles" / BY_ID[vignette_id]["bundle"]).read_text())
        resources = [entry["resource"] for entry in bundle["entry"]]
        (draft,) = [r for r in resources if r["resourceType"] == "MedicationRequest" and r["status"] == "draft"]
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources
                if r is not draft
            ],
        }
        response = requests.post(
            stack.fhir_base, json=transaction, headers={"Content-Type": "application/fhir+json"}, timeout=30
        )
        assert response.status_code == 200, f"{vignette_id}: {response.status_code} {response.text[:500]}"
        (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
        out[vignette_id] = (patient["id"], draft)
    return out


def expected_through_the_ehr(card: dict) -> dict:
    """The vignette's expectation, with 'check first: Child-Pugh class' allowed after each label."""
    return {
        **card,
        "offered": [label if label.startswith(STARTSWITH) else STARTSWITH + label for label in card["offered"]],
    }


@pytest.mark.parametrize("with_prefetch", [True, False], ids=["prefetch", "service-fetches"])
@pytest.mark.parametrize("vignette_id", THROUGH_THE_EHR)
def test_vignette_through_the_ehr(stack, stored, vignette_id, with_prefetch):
    patient_id, draft = stored[vignette_id]
    call = stack.ehr().call_hook(SERVICE, patient_id, draft, with_prefetch=with_prefetch)
    assert call.status == 200, call.response
    cards = call.response["cards"]
    expected = BY_ID[vignette_id]["expect"]["cards"]
    assert len(cards) == len(expected), [c["summary"] for c in cards]
    for card, card_expected in zip(cards, expected, strict=True):
        check_card(card, expected_through_the_ehr(card_expected), {f"MedicationRequest/{draft['id']}"})
        for suggestion in card.get("suggestions") or []:
            assert "check first: Child-Pugh class" in suggestion["label"], suggestion["label"]
