"""``python -m cds_service monitor`` end to end: simulated patients on the real FHIR server, assessed
by the live service (audit in SQLite), then the monitoring job run as a process against both.

A population whose outcomes follow the model passes (exit 0); one where primary resistance is
twice as likely as predicted and AFP > 400 in 90% (training: 34%) trips the calibration and drift
alerts (exit 1). The reports agree with each other, and the gauges reach a real HTTP server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bulk_export import TERMINOLOGY
from population import draw, run_through_service
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parents[1] / "deploy"))
from test_monitoring import MONITOR_JOB_PREFIX, rule_expressions, used

MIN_PATIENTS = 20  # each population is small; the alert's minimum is lowered to match
pytestmark = pytest.mark.timeout(900)  # 60 simulated patients through the service, then the job


def _monitor(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env}
    return subprocess.run(
        [sys.executable, "-m", "cds_service", "monitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def terminology(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("terminology") / "terminology.yaml"
    path.write_text(TERMINOLOGY)
    return path


def _population(live_server, stack, terminology: Path, **shift) -> dict[str, str]:
    """Runs a population through a fresh service; the environment the monitoring job needs."""
    server = live_server(terminology_path=terminology, fetch_budget_seconds=15)  # a loaded test machine
    run_through_service(server.url, stack.fhir_base, shift.pop("patients"))
    server.runtime.pipeline.audit_writer.flush()
    return {
        "CDS_DATABASE_URL": server.settings.database_url,
        "CDS_TERMINOLOGY_PATH": str(terminology),
        "CDS_MONITOR_MIN_PATIENTS": str(MIN_PATIENTS),
    }


def test_a_population_that_follows_the_model_passes(live_server, stack, terminology, tmp_path, pushgateway):
    patients = draw(60, "cal", seed=11)
    env = _population(live_server, stack, terminology, patients=patients)
    out = tmp_path / "report"
    result = _monitor(env, "--fhir-server", stack.fhir_base, "--out", str(out), "--pushgateway", pushgateway.url)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["matched_patients"] == len(patients) and report["unmatched_patients"] == 0
    resistance = report["resistance"]
    assert resistance["n"] >= 0.9 * len(patients)  # a death inside 3 months without a scan stays unknown
    assert abs(resistance["calibration_intercept"]["estimate"]) < 0.3
    assert {a["check"] for a in report["alerts"] if a["judged"]} >= {
        "resistance_calibration_intercept",
        "drift_psi",
        "drift_afp_share",
    }
    assert not [a["check"] for a in report["alerts"] if a["tripped"]]
    assert report["survival"]["os"]["n"] >= MIN_PATIENTS
    # No patient id anywhere in what the job wrote or said.
    written = (out / "report.html").read_text() + (out / "report.json").read_text() + result.stderr
    assert "cal-0" not in written
    assert pushgateway.pushes and pushgateway.pushes[-1][1] == "/metrics/job/hcc_cds_monitor"


def test_a_shifted_population_trips_calibration_and_drift_alerts(
    live_server, stack, terminology, tmp_path, pushgateway
):
    patients = draw(50, "shift", seed=12, resistance_factor=2.0, afp_share=0.9)
    env = _population(live_server, stack, terminology, patients=patients)
    ids = tmp_path / "candidates.txt"
    ids.write_text("# candidate ids from the hospital\n" + "\n".join(f"Patient/{p.id}" for p in patients) + "\n")
    out = tmp_path / "report"
    result = _monitor(
        env,
        "--fhir-server",
        stack.fhir_base,
        "--out",
        str(out),
        "--patients",
        str(ids),
        "--pushgateway",
        pushgateway.url,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads((out / "report.json").read_text())
    tripped = {a["check"] for a in report["alerts"] if a["tripped"]}
    assert {"resistance_calibration_intercept", "drift_afp_share", "drift_psi"} <= tripped
    assert report["resistance"]["calibration_intercept"]["estimate"] > 0.5
    assert "ALERT resistance_calibration_intercept" in result.stderr

    # report.html shows the same figures as report.json, alerts first.
    html = (out / "report.html").read_text()
    assert html.index("<h2>Alerts</h2>") < html.index("<h2>First line")
    intercept = report["resistance"]["calibration_intercept"]["estimate"]
    assert f"{intercept:.2f} (" in html
    assert f"{report['drift']['psi']:.3f}" in html
    assert html.count("<svg") >= 3 and 'id="calibration"' in html and 'id="drift"' in html

    # The gauges: in the textfile and, identically, in what the Pushgateway received.
    text = (out / "monitor.prom").read_text()
    (_, path, pushed) = pushgateway.pushes[-1]
    assert path == "/metrics/job/hcc_cds_monitor"
    for exposition in (text, pushed):
        samples = {
            (s.name, s.labels.get("check")): s.value
            for family in text_string_to_metric_families(exposition)
            for s in family.samples
        }
        assert samples[("cds_monitor_alert", "resistance_calibration_intercept")] == 1
        assert samples[("cds_monitor_figure", "resistance_calibration_intercept")] == pytest.approx(intercept)
        assert samples[("cds_monitor_alerts_tripped", None)] == len(tripped)
        written = {name for name, _ in samples}
        ruled = set(used(rule_expressions()))
        assert {name for name in ruled if name.startswith(MONITOR_JOB_PREFIX)} <= written


def test_digests_from_another_key_match_nobody(live_server, stack, terminology, tmp_path):
    """The monitoring job can only find patients under the secret that keyed the audit rows."""
    env = _population(live_server, stack, terminology, patients=draw(3, "key", seed=13))
    env["CDS_AUDIT_PATIENT_KEYS"] = json.dumps({"other": "x" * 40})
    result = _monitor(env, "--fhir-server", stack.fhir_base, "--out", str(tmp_path / "report"))
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert result.returncode == 0, result.stderr
    assert report["matched_patients"] == 0 and report["unmatched_patients"] >= 3


def test_a_refused_fhir_server_is_a_usage_error(tmp_path):
    result = _monitor(
        {"CDS_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}, "--fhir-server", "http://169.254.169.254/fhir"
    )
    assert result.returncode == 2
    assert "--fhir-server refused" in result.stderr
