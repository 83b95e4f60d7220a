"""deploy/monitoring: the Grafana dashboard and the Prometheus alert rules name only metrics and
labels the service exposes (checked against a live gunicorn service's /metrics), and the rules
file has Prometheus's rule-file structure (promtool is not installed here)."""

from __future__ import annotations

import json
import re
import sys

import pytest
import requests
import yaml
from fhir_factory import AMOXICILLIN, hook_request, medication_request
from processes import ROOT, free_port, serving
from prometheus_client.parser import text_string_to_metric_families

MONITORING = ROOT / "deploy" / "monitoring"
SERVICE = "hcc-systemic-therapy-select"
TARGET_LABELS = {"instance", "job"}  # added by Prometheus when it scrapes
MONITOR_JOB_PREFIX = "cds_monitor_"  # the monitoring job's gauges: tests/monitor checks those
_METRIC = re.compile(r"\b(cds_[a-z0-9_]+)")
_SELECTOR = re.compile(r"\b(cds_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def rules() -> dict:
    return yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in rules()["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            expressions.append(query["query"])
    return expressions


def used(expressions: list[str]) -> dict[str, set[str]]:
    """Metric name → the label names the expressions select or group it by."""
    metrics: dict[str, set[str]] = {}
    for expr in expressions:
        names = set(_METRIC.findall(expr))
        for name in names:
            metrics.setdefault(name, set())
        for name, matchers in _SELECTOR.findall(expr):
            metrics[name] |= set(_MATCHER.findall(matchers))
        for grouping in _GROUPING.findall(expr):  # applies to the metrics of its expression
            labels = {label.strip() for label in grouping.split(",") if label.strip()}
            for name in names:
                metrics[name] |= labels
    return metrics


def test_the_rules_file_has_prometheus_rule_file_structure():
    document = rules()
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names))
    alerts = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            allowed = (
                {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
                if "alert" in rule
                else {"record", "expr", "labels"}
            )
            assert set(rule) <= allowed, rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert _balanced(rule["expr"]), rule["expr"]
            if "alert" in rule:
                assert _NAME.match(rule["alert"])
                alerts.append(rule["alert"])
            if "for" in rule:
                assert _DURATION.match(str(rule["for"])), rule["for"]
            for key in ("labels", "annotations"):
                assert all(_NAME.match(k) and isinstance(v, str) for k, v in rule.get(key, {}).items()), rule
    assert len(alerts) == len(set(alerts))
    # The alerts docs/integration.md §6 promises, by the metric each watches.
    watched = used(rule_expressions())
    for metric in (
        "cds_http_requests_total",
        "cds_http_request_duration_seconds_bucket",
        "cds_database_up",
        "cds_audit_queue_depth",
        "cds_auth_failures_total",
        "cds_fetch_fallbacks_total",
    ):
        assert metric in watched


def test_the_dashboard_and_rules_name_only_metrics_and_labels_a_live_service_exposes(tmp_path):
    env = {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "CDS_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    command, port = [sys.executable, "-m", "cds_service", "serve"], free_port()
    with serving(command, env=env, cwd=ROOT, log_path=tmp_path / "log", port=port, drop_env=("PYTHONPATH",)) as service:
        at_start = scrape(service.url)
        requests.get(f"{service.url}/cds-services", timeout=10)
        irrelevant = hook_request("order-select", [medication_request(AMOXICILLIN, "2026-11-20", status="draft")])
        requests.post(f"{service.url}/cds-services/{SERVICE}", json=irrelevant, timeout=10)
        exposed = scrape(service.url)

    starting = [json.loads(line)["message"] for line in service.output().splitlines() if "Listening at" in line]
    assert any(message.startswith(f"Listening at: http://127.0.0.1:{port} (") for message in starting), starting
    assert all("http://" in message for message in starting), starting  # not gunicorn's own "Listening at:  (pid)"

    # Counters and gauges exist, at zero, before anything has happened.
    for name, labels in [
        ("cds_fetch_fallbacks_total", {"key": "labs", "result": "failed"}),
        ("cds_assessments_total", {"service_id": SERVICE, "outcome": "fast_path"}),
        ("cds_auth_failures_total", {"reason": "expired"}),
        ("cds_feedback_entries_total", {"service_id": SERVICE, "result": "conflict"}),
        ("cds_audit_records_dropped_total", {}),
        ("cds_audit_queue_depth", {}),
    ]:
        assert [
            value for sample_labels, value in at_start.get(name, []) if labels.items() <= sample_labels.items()
        ] == [0.0], name
    assert [value for _, value in at_start["cds_database_up"]] == [1.0]
    assert [labels["outcome"] for labels, value in exposed["cds_assessments_total"] if value == 1] == ["fast_path"]

    wanted = used(rule_expressions() + dashboard_expressions())
    wanted = {name: labels for name, labels in wanted.items() if not name.startswith(MONITOR_JOB_PREFIX)}
    assert set(wanted) - set(exposed) == set()
    for name, labels in wanted.items():
        known = set().union(*(sample_labels for sample_labels, _ in exposed[name])) | TARGET_LABELS
        assert labels <= known, (name, labels - known)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → its (labels, value) pairs."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    text = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _balanced(expr: str) -> bool:
    depth = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth


@pytest.mark.parametrize("expr", ["sum(rate(x[5m])", 'a{b="}"}'])
def test_the_bracket_check_finds_an_unclosed_bracket_but_not_one_in_a_string(expr):
    assert _balanced(expr) == (expr == 'a{b="}"}')
