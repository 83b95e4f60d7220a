"""Clinical vignettes, end to end over HTTP: each FHIR Bundle in bundles/ is sent to the real service
as one CDS Hooks call and every expectation in vignettes.yaml is checked.

The Bundle's draft MedicationRequests become ``context.draftOrders``; everything else is spread over
the prefetch keys as an EHR would fill them (fhir_factory.full_prefetch), with the Medications the
orders reference added to the ``medicationRequests`` search (as ``_include`` would). A key listed in
``prefetch_errors`` is replaced by an OperationOutcome. See README.md for the table of vignettes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import make_bundles
import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir_factory import full_prefetch, hook_request
from hook_calls import post_hook

HERE = Path(__file__).resolve().parent
ORDER_DATE = "2026-11-20"
SERVICES = {"order-select": "hcc-systemic-therapy-select", "order-sign": "hcc-systemic-therapy-sign"}
STARTSWITH = "startswith:"
VIGNETTES = make_bundles.load_vignettes()


def _param(v: dict[str, Any]):
    marks = [pytest.mark.xfail(strict=True, reason=v["xfail"])] if v.get("xfail") else []
    return pytest.param(v, id=v["id"], marks=marks)


def load_bundle(name: str) -> dict[str, Any]:
    return json.loads((HERE / "bundles" / name).read_text(encoding="utf-8"))


def hook_body(vignette: dict[str, Any]) -> dict[str, Any]:
    """The CDS Hooks request an EHR would send for this vignette."""
    resources = [entry["resource"] for entry in load_bundle(vignette["bundle"])["entry"]]
    drafts = [r for r in resources if r["resourceType"] == "MedicationRequest" and r.get("status") == "draft"]
    assert drafts, "every vignette has a draft order"
    assert all(d.get("authoredOn") == ORDER_DATE for d in drafts)
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    record = [r for r in resources if r not in drafts and r["resourceType"] != "Patient"]
    prefetch = full_prefetch(record, patient=patient["id"])
    prefetch["patient"] = patient
    medications = [r for r in record if r["resourceType"] == "Medication"]
    if medications:  # MedicationRequest?...&_include=MedicationRequest:medication
        requests_ = prefetch["medicationRequests"]
        requests_["entry"] += [{"resource": m, "search": {"mode": "include"}} for m in medications]
    for key in vignette.get("prefetch_errors") or []:
        assert key in prefetch, key
        prefetch[key] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "timeout", "diagnostics": f"{key} query timed out"}],
        }
    return hook_request(vignette.get("hook", "order-select"), drafts, prefetch=prefetch, patient=patient["id"])


def post(server, vignette: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return post_hook(server, body, SERVICES[vignette.get("hook", "order-select")])


def withheld_lines(detail: str) -> dict[str, str]:
    """Regimen -> the rest of its "**<regimen>: not offered**" line."""
    found = {}
    for line in detail.splitlines():
        if ": not offered**" in line:
            regimen = line.split("**", 2)[1].removesuffix(": not offered")
            found[regimen] = line.split(": not offered**", 1)[1]
    return found


def check_label(label: str, expected: str) -> bool:
    if expected.startswith(STARTSWITH):
        return label.startswith(expected[len(STARTSWITH) :])
    return label == expected


def check_card(card: dict[str, Any], expected: dict[str, Any], draft_refs: set[str]) -> None:
    summary, detail = card["summary"], card["detail"]
    where = f"\nsummary: {summary}\ndetail:\n{detail}"
    assert card["source"]["topic"]["code"] == expected["topic"], where
    assert card["indicator"] == expected["indicator"], where
    if "summary_startswith" in expected:
        assert summary.startswith(expected["summary_startswith"]), where
    for text in expected.get("summary_contains") or []:
        assert text in summary, f"{text!r} not in summary{where}"
    for text in expected.get("summary_excludes") or []:
        assert text not in summary, f"{text!r} in summary{where}"
    for text in expected.get("detail_contains") or []:
        assert text in detail, f"{text!r} not in detail{where}"
    for text in expected.get("detail_excludes") or []:
        assert text not in detail, f"{text!r} in detail{where}"

    # Suggestions: exactly those expected, no extra one (each is a one-click order).
    suggestions = card.get("suggestions") or []
    labels = [s["label"] for s in suggestions]
    offered = expected["offered"]
    assert len(labels) == len(offered) and all(map(check_label, labels, offered)), (
        f"offered {labels}, expected {offered}{where}"
    )
    for suggestion in suggestions:
        for action in suggestion["actions"]:
            if action["type"] == "create":
                resource = action["resource"]
                assert resource["resourceType"] == "MedicationRequest", suggestion["label"]
                order = MedicationRequest.model_validate(resource)
                assert (order.status, order.intent) == ("draft", "order"), suggestion["label"]
            elif action["type"] == "delete":
                assert action["resourceId"] in draft_refs, "only a draft order of this call may be removed"
            else:
                pytest.fail(f"unexpected action {action['type']} in {suggestion['label']}")

    # Regimens withheld: exactly those expected, each with its reasons on the same line.
    found = withheld_lines(detail)
    withheld = {w["regimen"]: w["because"] for w in expected.get("withheld") or []}
    assert set(found) == set(withheld), f"withheld {sorted(found)}, expected {sorted(withheld)}{where}"
    for regimen, because in withheld.items():
        for text in because:
            assert text in found[regimen], f"{regimen}: {text!r} not in {found[regimen]!r}"


@pytest.mark.parametrize("vignette", [_param(v) for v in VIGNETTES])
def test_vignette(live_server, vignette):
    body = hook_body(vignette)
    server = live_server(**(vignette.get("settings") or {}))
    cards = post(server, vignette, body)["cards"]
    expected = vignette["expect"]["cards"]
    assert len(cards) == len(expected), [(c["source"]["topic"]["code"], c["summary"]) for c in cards]
    draft_refs = {f"MedicationRequest/{e['resource']['id']}" for e in body["context"]["draftOrders"]["entry"]}
    for card, card_expected in zip(cards, expected, strict=True):
        check_card(card, card_expected, draft_refs)


# ----------------------------------------------------------------------------- the files


def test_every_bundle_is_listed_and_every_listed_bundle_exists():
    on_disk = sorted(p.name for p in (HERE / "bundles").glob("*.json"))
    listed = [v["bundle"] for v in VIGNETTES]
    assert len(listed) == len(set(listed)), "a bundle is listed twice"
    assert len({v["id"] for v in VIGNETTES}) == len(VIGNETTES), "duplicate vignette id"
    assert sorted(listed) == on_disk


def test_vignette_entries_are_complete():
    for v in VIGNETTES:
        assert {"id", "scenario", "bundle", "description", "expect"} <= set(v), v.get("id")
        assert v["scenario"] in ("first_line", "second_line"), v["id"]
        assert v.get("hook", "order-select") in SERVICES, v["id"]
        cards = v["expect"]["cards"]
        if not cards:
            assert v["expect"].get("why"), v["id"]
        for card in cards:
            assert {"topic", "indicator", "offered", "why"} <= set(card), v["id"]


def test_make_bundles_reproduces_the_committed_files():
    built = make_bundles.build()
    assert sorted(k for k in built if k.startswith("bundles/")) == sorted(
        f"bundles/{p.name}" for p in (HERE / "bundles").glob("*.json")
    )
    for relative, text in built.items():
        assert (HERE / relative).read_text(encoding="utf-8") == text, (
            f"{relative} is stale: run .venv/bin/python tests/vignettes/make_bundles.py"
        )
    assert make_bundles.build() == built, "make_bundles.py is not deterministic"


def test_bundles_are_fhir_r4_collections_with_fixed_ids():
    from fhir.resources.R4B.bundle import Bundle

    for v in VIGNETTES:
        data = load_bundle(v["bundle"])
        assert data["type"] == "collection"
        if v["id"] not in _NOT_STRICT_FHIR:
            Bundle.model_validate(data)
        prefix = data["id"] + "-"
        ids = [e["resource"]["id"] for e in data["entry"]]
        assert all(i.startswith(prefix) for i in ids), ids
        assert len(ids) == len(set(ids))


# v08 sends a quantity value as a JSON string on purpose: not valid FHIR, by design.
_NOT_STRICT_FHIR = {"v08"}
