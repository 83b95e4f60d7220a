"""The audit row of a real hook call: a keyed patient digest (never the id), the inputs the model
used and what it predicted; revision 0006 over rows written at 0005. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir_factory import (
    LENVATINIB,
    SORAFENIB,
    afp,
    alt,
    condition,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    medication_request,
    progression,
)
from hook_calls import post_hook
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect, select, text

from cds_service.patient_key import DEMO_KEY_ID, PatientKeyer
from cds_service.settings import Settings
from cds_service.store import AuditedAssessment, Store, migrate
from cds_service.store.tables import metadata

SERVICE = "hcc-systemic-therapy-select"
FHIR_A = "https://fhir-a.hospital.example/r4"
FHIR_B = "https://fhir-b.hospital.example/r4"
SECRET_OLD = b"old-secret-of-at-least-thirty-two-bytes!"
SECRET_NEW = b"new-secret-of-at-least-thirty-two-bytes!"


def hook_body(scenario: str, patient: str) -> dict[str, Any]:
    """A first-line sorafenib order (AFP 1,250 ng/mL and ALT 65 U/L: both markers high), or
    lenvatinib after sorafenib failed at 2 months (primary resistance), for ``patient``."""
    labs = [afp(1250, "2026-11-12", patient=patient), alt(65, "2026-11-12", patient=patient)]
    history = [*hcc_hbv_conditions(patient), condition("K74.60", "Unspecified cirrhosis of liver", patient=patient)]
    if scenario == "first_line":
        draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-sora")
    else:
        draft = medication_request(LENVATINIB, "2026-11-20", status="draft", rid="draft-lenva")
        history += [
            medication_request(SORAFENIB, "2026-03-01", status="completed"),
            progression("2026-05-01", patient=patient),
        ]
    body = hook_request("order-select", [draft], prefetch=full_prefetch([*labs, *history], patient), patient=patient)
    # The factory's resources name a default patient where no argument reaches them: use ours throughout.
    return json.loads(json.dumps(body).replace('"Patient/p1"', f'"Patient/{patient}"'))


def keyer(secrets: dict[str, bytes], current: str, server: str = FHIR_A) -> PatientKeyer:
    return PatientKeyer(secrets, current).for_server(server)


def test_the_digest_differs_under_two_secrets_and_two_fhir_servers():
    old, new = keyer({"old": SECRET_OLD}, "old"), keyer({"new": SECRET_NEW}, "new")
    assert old.key("pat-1")[1] != new.key("pat-1")[1]
    on_b = keyer({"old": SECRET_OLD}, "old", FHIR_B)
    assert old.key("pat-1") != on_b.key("pat-1")
    assert old.key("pat-1") != old.key("pat-2")
    # The URL as the service reads fhirServer: case of the host and a trailing slash do not matter.
    assert keyer({"old": SECRET_OLD}, "old", FHIR_A.upper().replace("/R4", "/r4") + "/").key("pat-1") == old.key(
        "pat-1"
    )
    with pytest.raises(RuntimeError, match="for_server"):
        PatientKeyer({"old": SECRET_OLD}, "old").key("pat-1")  # no server bound: refused, never a guess


def test_rotation_keeps_rows_keyed_under_the_old_secret_matchable():
    before = keyer({"old": SECRET_OLD}, "old")
    key_id, digest = before.key("pat-1")
    after = keyer({"old": SECRET_OLD, "new": SECRET_NEW}, "new")
    assert after.key("pat-1")[0] == "new" and after.key("pat-1")[1] != digest
    assert after.digest("pat-1", key_id) == digest
    assert after.digest("pat-1", "retired") is None


def test_settings_choose_the_key_and_production_refuses_a_missing_or_short_one():
    rotated = Settings(
        audit_patient_keys={"2026-01": SECRET_OLD.decode(), "2026-07": SECRET_NEW.decode()},
        audit_patient_key_id="2026-07",
    )
    assert PatientKeyer.from_settings(rotated).for_server(FHIR_A).key("p")[0] == "2026-07"
    assert PatientKeyer.from_settings(Settings()).for_server(FHIR_A).key("p")[0] == DEMO_KEY_ID
    with pytest.raises(ValidationError, match="must name one of the key ids"):
        Settings(audit_patient_keys={"a": SECRET_OLD.decode(), "b": SECRET_NEW.decode()}, audit_patient_key_id="c")
    production: dict[str, Any] = {
        "environment": "production",
        "fhir_server_allowlist": [FHIR_A],
        "public_base_url": "https://cds.hospital.example",
    }
    with pytest.raises(ValidationError, match="production needs CDS_AUDIT_PATIENT_KEYS"):
        Settings(**production)
    with pytest.raises(ValidationError, match="shorter than 32 bytes") as short:
        Settings(**production, audit_patient_keys={"k": "too-short-a-secret"})
    assert "too-short-a-secret" not in str(short.value.errors(include_input=False))


@pytest.fixture
def audited(live_server, new_database_url):
    """Factory: a live service on a new database of this parametrisation, keyed with ``keys``."""

    def start(keys: dict[str, bytes], current: str, database_url: str | None = None):
        return live_server(
            database_url=database_url or new_database_url(),
            audit_patient_keys={key_id: secret.decode() for key_id, secret in keys.items()},
            audit_patient_key_id=current,
        )

    return start


def audited_calls(server, expected: int) -> list[AuditedAssessment]:
    """The audit rows, once ``expected`` are written: a row is queued after the answer is sent."""
    deadline = time.monotonic() + 10
    while True:
        server.runtime.pipeline.audit_writer.flush()
        rows = list(server.runtime.store.audit.assessments())
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def test_the_audit_row_carries_inputs_and_estimates_of_real_hook_calls_and_no_patient_id(audited):
    patient = f"pat-{uuid.uuid4().hex[:20]}"
    server = audited({"k1": SECRET_OLD}, "k1")
    post_hook(server, hook_body("first_line", patient), SERVICE)
    post_hook(server, hook_body("second_line", patient), SERVICE)
    first, second = audited_calls(server, 2)
    bundle = server.runtime.assessor.bundle

    expected_digest = keyer({"k1": SECRET_OLD}, "k1", "").key(patient)  # no fhirServer in these calls
    for row in (first, second):
        assert (row.patient_key_id, row.patient_digest) == expected_digest
        assert row.model_version == bundle.version and row.service_id == SERVICE

    assert first.scenario == "first_line"
    assert first.inputs["markers"] == {"afp_over_400": True, "alt_over_40": True}
    assert first.inputs["values"]["afp"] == {
        "value": 1250.0,
        "unit": "ng/mL",
        "comparator": None,
        "effective": "2026-11-12",
    }
    assert first.inputs["values"]["alt"]["value"] == 65.0 and first.inputs["values"]["alt"]["unit"] == "U/L"
    assert first.inputs["missing"] == []
    risk = bundle.resistance.predict_risk(afp_over_400=True, alt_over_40=True)
    assert first.resistance_probability == pytest.approx(risk.probability)
    assert first.resistance_ci == pytest.approx((risk.ci_low, risk.ci_high))
    assert first.survival == {}

    assert second.scenario == "second_line"
    assert second.inputs["markers"]["primary_resistance"] is True
    assert second.resistance_probability is None
    comparison = bundle.survival_comparison(primary_resistance=True, tumour_size_over_5cm=None, multiple_tumours=None)
    assert second.inputs["marginalised"] == comparison.marginalised_covariates
    assert set(second.inputs["missing"]) >= {"tumour_size_over_5cm", "multiple_tumours"}
    assert set(second.survival) == {"tki", "tki_pd1"}
    for arm in ("tki", "tki_pd1"):
        for endpoint, estimates in (("pfs", comparison.pfs), ("os", comparison.os)):
            stored, estimate = second.survival[arm][endpoint], estimates[arm]
            assert stored["median_months"] == pytest.approx(estimate.median_months)
            for month in (6, 12):
                assert stored["at_months"][str(month)]["survival"] == pytest.approx(
                    estimate.survival_at[month].survival
                )

    assert_nowhere_in_database(server.runtime.store, patient)


def assert_nowhere_in_database(store: Store, patient: str) -> None:
    """Every column of every row of every table, as text: the id appears in none."""
    engine = store.database.engine
    tables = inspect(engine).get_table_names()
    assert {"assessment_audit", "assessment_card", "feedback", "jwt_replay"} <= set(tables)
    scanned = 0
    with engine.connect() as connection:
        for table in tables:
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    scanned += 1
                    assert patient not in str(value), (table, value)
    assert scanned > 20


def test_rows_keyed_before_a_rotation_still_match_under_the_old_key_id(audited, new_database_url):
    patient, url = f"pat-{uuid.uuid4().hex[:12]}", new_database_url()
    before = audited({"2026-01": SECRET_OLD}, "2026-01", url)
    post_hook(before, hook_body("first_line", patient), SERVICE)
    audited_calls(before, 1)
    after = audited({"2026-01": SECRET_OLD, "2026-07": SECRET_NEW}, "2026-07", url)
    post_hook(after, hook_body("first_line", patient), SERVICE)
    old_row, new_row = audited_calls(after, 2)
    rotated = after.runtime.pipeline.patient_keyer.for_server("")
    assert (old_row.patient_key_id, new_row.patient_key_id) == ("2026-01", "2026-07")
    assert rotated.digest(patient, "2026-01") == old_row.patient_digest
    assert rotated.digest(patient, "2026-07") == new_row.patient_digest != old_row.patient_digest


def test_revision_0006_upgrades_a_database_at_0005_holding_rows(database_url):
    assert migrate(database_url, "0005") == "0005"
    engine = create_engine(database_url)
    recorded = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO assessment_audit (hook_instance, service_id, hook, model_version, outcome, timing_ms,"
                " missing_data, recorded_at, audit_id) VALUES (:hi, :sid, 'order-select', 'v1', 'cards', 12.5,"
                " '[\"afp\"]', :at, :aid)"
            ),
            {"hi": str(uuid.uuid4()), "sid": SERVICE, "at": recorded, "aid": str(uuid.uuid4())},
        )
        audit_row = connection.execute(text("SELECT id FROM assessment_audit")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO assessment_card (assessment_id, card_uuid, indicator, kind, suggestion_uuids)"
                " VALUES (:a, 'card-1', 'warning', 'sorafenib-resistance', '[]')"
            ),
            {"a": audit_row},
        )
    engine.dispose()

    store = Store(database_url)  # migrates 0005 -> head
    columns = {column["name"] for column in inspect(store.database.engine).get_columns("assessment_audit")}
    assert set(metadata.tables["assessment_audit"].columns.keys()) == columns
    [old] = store.audit.assessments()
    assert (old.model_version, old.scenario, old.patient_digest, old.resistance_probability) == ("v1", None, None, None)
    assert old.inputs == {} and old.survival == {} and old.recorded_at == recorded
    [record] = store.audit.records()
    assert record.card_uuids == ["card-1"] and record.missing_data == ["afp"]
    # A card audited at 0005 still takes feedback (the feedback store reads the same rows).
    assert store.reports.audit_report().assessments == 1
    with store.database.engine.connect() as connection:
        assert connection.execute(select(metadata.tables["assessment_audit"].c.scenario)).scalar_one() is None


def test_assessments_reads_a_period_oldest_first(database_url):
    from cds_service.store import AssessmentAudit

    store = Store(database_url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for day in (3, 1, 2):
        store.audit.record_assessment(
            AssessmentAudit(
                hook_instance=uuid.uuid4(),
                service_id=SERVICE,
                hook="order-select",
                outcome="no_cards",
                timing_ms=1.0,
                recorded_at=start + timedelta(days=day),
                scenario="other",
            )
        )
    period = list(store.audit.assessments(since=start + timedelta(days=1), until=start + timedelta(days=3)))
    assert [row.recorded_at.day for row in period] == [2, 3]
    assert [row.scenario for row in period] == ["other", "other"]
