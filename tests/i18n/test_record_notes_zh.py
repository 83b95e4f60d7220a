"""Issue 28, finish: notes no vignette shows but real records do (a record dated after the order,
an unknown unit, a value chosen among several, a failed FHIR read) read in Chinese in a zh-CN
card and as before in an English one. Over HTTP against the real service, with vignette 01's
record changed."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from fhir_factory import SORAFENIB

from cards import i18n
from cards.notes import say
from cds_service.smart.assessment import FEATURE_LABELS, feature_rows
from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.terminology import load_terminology

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vignettes"))  # make_bundles, as its tests do
from test_vignettes import ORDER_DATE, SERVICES, VIGNETTES, hook_body  # type: ignore[import-not-found]

V01 = next(v for v in VIGNETTES if v["id"] == "v01")


def _resource(body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    for bundle in body["prefetch"].values():
        for entry in (bundle or {}).get("entry") or []:
            if entry["resource"].get("id") == resource_id:
                return entry["resource"]
    raise AssertionError(resource_id)


def _hcc_after_order(body: dict[str, Any]) -> None:
    _resource(body, "v01-hcc")["onsetDateTime"] = "2026-11-25"


def _afp_after_order(body: dict[str, Any]) -> None:
    _resource(body, "v01-afp")["effectiveDateTime"] = "2026-11-25"


def _afp_unit_unknown(body: dict[str, Any]) -> None:
    _resource(body, "v01-afp")["valueQuantity"] = {"value": 1250.0, "unit": "furlong"}


def _afp_with_an_older_record(body: dict[str, Any]) -> None:
    afp = _resource(body, "v01-afp")
    older = copy.deepcopy(afp) | {"id": "v01-afp-older", "effectiveDateTime": "2026-10-01"}
    for bundle in body["prefetch"].values():
        if afp in [e["resource"] for e in (bundle or {}).get("entry") or []]:
            bundle["entry"].append({"resource": older})


def _fetch_fails(body: dict[str, Any]) -> None:
    observations = next(key for key, bundle in body["prefetch"].items() if _has(bundle, "v01-afp"))
    del body["prefetch"][observations]
    body["fhirServer"] = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port


def _has(bundle: Any, resource_id: str) -> bool:
    return isinstance(bundle, dict) and any(e["resource"].get("id") == resource_id for e in bundle.get("entry") or [])


@pytest.mark.parametrize(
    ("change", "chinese", "english"),
    [
        (
            _afp_after_order,
            "仅找到医嘱日期（2026-11-20）之后的AFP（最早为2026-11-25）；已忽略",
            "only AFP after the order date 2026-11-20 found (first 2026-11-25); ignored",
        ),
        (
            _afp_unit_unknown,
            "的单位'furlong'不是",
            "AFP unit 'furlong' is not a known unit for AFP (model unit ng/mL)",
        ),
        (
            _fetch_fails,
            "无法连接FHIR服务器（ConnectionError）",
            "the FHIR server could not be reached (ConnectionError)",
        ),
    ],
)
def test_a_records_own_notes_read_in_chinese(
    live_server, change: Callable[[dict[str, Any]], None], chinese: str, english: str
) -> None:
    zh, en = live_server(locale="zh_CN"), live_server()
    texts = {}
    for name, server in (("zh", zh), ("en", en)):
        body = hook_body(V01)
        change(body)
        response = requests.post(f"{server.url}/cds-services/{SERVICES['order-select']}", json=body, timeout=20)
        assert response.status_code == 200, response.text
        texts[name] = "\n".join(f"{card['summary']}\n{card['detail']}" for card in response.json()["cards"])
    assert chinese in texts["zh"] and english not in texts["zh"], texts["zh"]
    assert english in texts["en"], texts["en"]


@pytest.mark.parametrize(
    ("change", "feature", "chinese", "english"),
    [
        (
            _hcc_after_order,
            "hcc_diagnosis",
            "已跳过：Condition/v01-hcc，日期为2026-11-25，晚于医嘱",
            "no HCC Condition found; skipped: Condition/v01-hcc dated 2026-11-25, after the order",
        ),
        (
            _afp_with_an_older_record,
            "afp",
            "AFP 2026-11-10（Observation/v01-afp）；另有1条记录未使用",
            "AFP 2026-11-10 (Observation/v01-afp); 1 other record(s) not used",
        ),
    ],
)
def test_notes_the_cards_do_not_show_read_in_chinese(
    change: Callable[[dict[str, Any]], None], feature: str, chinese: str, english: str
) -> None:
    """A skipped record and a value chosen among several are in the features' notes (the audit,
    the SMART app), not in a card: the same record through the mappers, worded by cards.notes."""
    body = hook_body(V01)
    change(body)
    features = map_patient_features(
        list(body["prefetch"].values()), as_of=date.fromisoformat(ORDER_DATE), terminology=load_terminology()
    )
    note = getattr(features, feature).note
    assert note == english
    with i18n.using("zh_CN"):
        assert chinese in say(note) and "after the order" not in say(note) and "not used" not in say(note), say(note)


def test_the_smart_apps_lab_table_says_how_a_value_was_read() -> None:
    """Vignette 55: AFP written as the text '＞1210 ng/mL' under a local code named 甲胎蛋白, ALT
    named 谷丙转氨酶. The app's lab rows say so, as the cards do, in both languages."""
    body = hook_body(next(v for v in VIGNETTES if v["id"] == "v55"))
    features = map_patient_features(
        list(body["prefetch"].values()), as_of=date.fromisoformat(ORDER_DATE), terminology=load_terminology()
    )
    rows = {}
    for language in ("en", "zh_CN"):
        with i18n.using(language):
            rows[language] = {row.key: row.value or "" for row in feature_rows(features, FEATURE_LABELS)}
    assert "read from the text result '" in rows["en"]["afp"] and "matched by the test's name" in rows["en"]["afp"]
    assert "由文本结果“" in rows["zh_CN"]["afp"] and "按检验名称匹配" in rows["zh_CN"]["afp"]
    assert "matched by the test's name" in rows["en"]["alt"] and "text result" not in rows["en"]["alt"]
    assert "按检验名称匹配" in rows["zh_CN"]["alt"] and "matched" not in rows["zh_CN"]["alt"]


def test_sorafenib_without_a_start_date_reads_in_chinese() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms-1",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [SORAFENIB]},
    }
    history = map_treatment_history([statement], terminology=load_terminology(), as_of=date.fromisoformat(ORDER_DATE))
    note = history.sorafenib_start.note
    assert note == "sorafenib recorded without any start date: MedicationStatement/ms-1"
    with i18n.using("zh_CN"):
        assert say(note) == "索拉非尼有用药记录，但均无开始日期：MedicationStatement/ms-1"


def _afp_below_500(body: dict[str, Any]) -> None:
    """'<500 ng/mL': below 500, but above 400 or not cannot be told."""
    afp = _resource(body, "v01-afp")
    afp["valueQuantity"] = {**afp["valueQuantity"], "value": 500, "comparator": "<"}


def _hcc_refuted(body: dict[str, Any]) -> None:
    hcc = _resource(body, "v01-hcc")
    hcc["verificationStatus"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]
    }


@pytest.mark.parametrize(
    ("change", "feature", "chinese", "english"),
    [
        (_afp_below_500, "afp_over_400", "<500 ng/mL：无法判断该值是否高于400 ng/mL", "<500 ng/mL cannot tell whether"),
        (
            _hcc_refuted,
            "hcc_diagnosis",
            "Condition/v01-hcc：核实状态（verificationStatus）为refuted",
            "Condition/v01-hcc verificationStatus refuted",
        ),
        (lambda body: None, "afp_over_400", "1250 ng/mL，阈值400 ng/mL", "1250 ng/mL vs threshold 400 ng/mL"),
    ],
)
def test_threshold_and_status_notes_read_in_chinese(
    change: Callable[[dict[str, Any]], None], feature: str, chinese: str, english: str
) -> None:
    body = hook_body(V01)
    change(body)
    features = map_patient_features(
        list(body["prefetch"].values()), as_of=date.fromisoformat(ORDER_DATE), terminology=load_terminology()
    )
    note = getattr(features, feature).note
    assert english in note, note
    with i18n.using("zh_CN"):
        assert chinese in say(note) and english not in say(note), say(note)
