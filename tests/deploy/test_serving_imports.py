"""Serving needs none of the training stack (issue 23): the image leaves it out, and importing it
cost most of the cold start. A fresh interpreter builds the app, answers discovery, a first-line
and a second-line hook call and draws the SMART app's survival charts, then reports what it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from fhir_factory import (
    LENVATINIB,
    SORAFENIB,
    afp,
    alt,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    medication_request,
    progression,
)
from processes import ROOT

TRAINING_STACK = ("sklearn", "lifelines", "matplotlib", "scipy", "pandas")
SELECT = "hcc-systemic-therapy-select"

# Runs in the child: everything a worker does for its first answers, nothing more.
CHILD = """
import json, sys
from cds_service import create_app
from cds_service.settings import Settings

service, stack, bodies = sys.argv[1], set(sys.argv[2:]), json.load(sys.stdin)
app = create_app(Settings(database_url="sqlite://"))
client = app.test_client()
out = {"discovery": client.get("/cds-services").status_code, "hooks": {}}
for name, body in bodies.items():
    response = client.post("/cds-services/" + service, json=body)
    out["hooks"][name] = [response.status_code, [c["summary"] for c in (response.get_json() or {}).get("cards", [])]]

from cds_service.smart import charts
from cds_service.smart.assessment import survival_panels
from models.registry import load_bundle

bundle = load_bundle()
with app.test_request_context("/smart/app"):
    comparison = bundle.survival_comparison(primary_resistance=True, tumour_size_over_5cm=None, multiple_tumours=True)
    panels = survival_panels(comparison, bundle.reference_curves(), "primary")
    out["svgs"] = [charts.survival_svg(panel, "chart-" + panel.endpoint) for panel in panels]
out["loaded"] = sorted(name for name in sys.modules if name.split(".")[0] in stack)
print(json.dumps(out))
"""


def _bodies() -> dict[str, dict]:
    first_line = [afp(1250.0, "2026-11-10"), alt(65.0, "2026-11-12"), *hcc_hbv_conditions()]
    second_line = [
        *hcc_hbv_conditions(),
        medication_request(SORAFENIB, "2026-03-01", status="completed"),
        progression("2026-05-01"),
        afp(400, "2026-02-20"),
        alt(40, "2026-02-20"),
    ]
    sorafenib = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-sorafenib")
    lenvatinib = medication_request(LENVATINIB, "2026-11-20", status="draft", rid="draft-lenvatinib")
    return {
        "first_line": hook_request("order-select", [sorafenib], prefetch=full_prefetch(first_line)),
        "second_line": hook_request("order-select", [lenvatinib], prefetch=full_prefetch(second_line)),
    }


def test_first_answers_and_charts_load_no_training_library():
    child = subprocess.run(
        [sys.executable, "-c", CHILD, SELECT, *TRAINING_STACK],
        input=json.dumps(_bodies()),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["discovery"] == 200
    for name, (status, summaries) in out["hooks"].items():
        assert status == 200 and summaries, f"{name}: {status} {summaries}"
    assert any("resistance" in s for s in out["hooks"]["first_line"][1])
    assert len(out["svgs"]) == 2
    for svg in out["svgs"]:
        root = ET.fromstring(svg)
        assert root.get("role") == "img" and root.find("{http://www.w3.org/2000/svg}title") is not None
    # The point of the test: nothing of the training stack was imported along the way.
    assert out["loaded"] == [], f"serving imported {out['loaded']}"
