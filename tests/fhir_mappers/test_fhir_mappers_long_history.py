"""Long histories end to end: a first-line hook call whose prefetch holds 10,000 lab Observations
(~4.4 MB, over the former 4 MiB request limit) is assessed by the service as deployed (gunicorn
with waitress in each worker), and the cards read the most recent results among them."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests
from fhir_factory import SORAFENIB, full_prefetch, hcc_hbv_conditions, hook_request, lab, medication_request
from hook_calls import check_response
from processes import serving

ORDER_DAY = date(2026, 11, 20)
SERVICE = "hcc-systemic-therapy-select"
# (LOINC, unit, value of the newest result): the seven labs the models read, then seven they do not.
SERIES = [
    ("1834-1", "ng/mL", 1250),  # AFP
    ("1742-6", "U/L", 65),  # ALT
    ("1920-8", "U/L", 71),  # AST
    ("1975-2", "mg/dL", 1.3),  # total bilirubin
    ("1751-7", "g/dL", 3.4),  # albumin
    ("777-3", "10*3/uL", 142),  # platelets
    ("6301-6", "{INR}", 1.2),  # INR
    ("2951-2", "mmol/L", 139),  # sodium
    ("2823-3", "mmol/L", 4.1),  # potassium
    ("2160-0", "mg/dL", 0.9),  # creatinine
    ("718-7", "g/dL", 12.9),  # haemoglobin
    ("6690-2", "10*3/uL", 5.6),  # leucocytes
    ("2345-7", "mg/dL", 104),  # glucose
    ("1988-5", "mg/L", 6.2),  # CRP
]
OLDER_AFP, OLDER_ALT = 12, 20  # every older AFP and ALT: not raised, so a card saying "high" read the newest


def _ten_thousand_labs() -> list[dict[str, Any]]:
    labs = []
    for i in range(10_000):
        code, unit, newest = SERIES[i % len(SERIES)]
        step = i // len(SERIES)  # one result per code every 2 days, newest 5 days before the order
        value = newest if step == 0 else {"1834-1": OLDER_AFP, "1742-6": OLDER_ALT}.get(code, newest)
        labs.append(lab(code, value, unit, (ORDER_DAY - timedelta(days=5 + 2 * step)).isoformat()))
    return labs


def test_ten_thousand_lab_observations_get_their_cards(tmp_path: Path):
    labs = _ten_thousand_labs()
    draft = medication_request(SORAFENIB, ORDER_DAY.isoformat(), status="draft", rid="draft-sora")
    body = orjson.dumps(hook_request("order-select", [draft], prefetch=full_prefetch([*labs, *hcc_hbv_conditions()])))
    assert len(body) > 4 * 1024 * 1024  # the request limit before long histories were assessed
    env = {"CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3", "CDS_LOG_LEVEL": "WARNING"}
    with serving([sys.executable, "-m", "cds_service"], env=env, log_path=tmp_path / "service.log") as service:
        response = requests.post(
            f"{service.url}/cds-services/{SERVICE}",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
    assert response.status_code == 200, response.text[:500]
    payload = response.json()
    check_response(payload)
    (card,) = payload["cards"]
    assert card["indicator"] == "warning"
    assert "AFP and ALT high" in card["summary"]
