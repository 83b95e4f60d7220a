"""deploy/k8s/cronjob-monitor.yaml runs the monitoring job as the code expects: the command line
parses, the FHIR server is one the production settings allow, exit codes match the job's, and it
reads the same database, patient keys and terminology as the service (schema: tests/deploy/test_k8s.py)."""

from __future__ import annotations

import json

from k8s_manifests import manifests

from cds_service import monitor

DOCS = manifests()
CRONJOB = DOCS["CronJob/hcc-cds-monitor"]
POD = CRONJOB["spec"]["jobTemplate"]["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
SERVICE = DOCS["Deployment/hcc-cds"]["spec"]["template"]["spec"]["containers"][0]


def _option(name: str) -> str:
    args = CONTAINER["args"]
    return args[args.index(name) + 1]


def test_same_image_and_command_as_the_service_and_a_known_subcommand():
    assert CONTAINER["image"] == SERVICE["image"] and CONTAINER["command"] == SERVICE["command"]
    assert CONTAINER["args"][0] == "monitor"


def test_the_fhir_server_is_in_the_production_allowlist():
    allowlist = json.loads(DOCS["ConfigMap/hcc-cds-config"]["data"]["CDS_FHIR_SERVER_ALLOWLIST"])
    assert any(_option("--fhir-server").startswith(prefix) for prefix in allowlist)


def test_alerts_and_configuration_errors_are_not_retried_but_outages_are():
    job = CRONJOB["spec"]["jobTemplate"]["spec"]
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert sorted(rule["onExitCodes"]["values"]) == [monitor.EXIT_ALERT, monitor.EXIT_USAGE]
    assert monitor.EXIT_FAILED not in rule["onExitCodes"]["values"] and job["backoffLimit"] >= 1
    assert POD["restartPolicy"] == "Never" and CRONJOB["spec"]["concurrencyPolicy"] == "Forbid"


def test_reads_the_services_database_patient_keys_and_terminology():
    env = {e["name"]: e for e in CONTAINER["env"]}
    service_env = {e["name"]: e for e in SERVICE["env"]}
    for name in ("CDS_DATABASE_URL", "CDS_AUDIT_PATIENT_KEYS"):
        assert env[name]["valueFrom"] == service_env[name]["valueFrom"]
    assert CONTAINER["envFrom"] == SERVICE["envFrom"]
    terminology = DOCS["ConfigMap/hcc-cds-config"]["data"]["CDS_TERMINOLOGY_PATH"]
    mount = next(m for m in CONTAINER["volumeMounts"] if m["name"] == "terminology")
    assert terminology.startswith(mount["mountPath"] + "/")


def test_reports_go_to_a_persistent_volume_on_a_read_only_root():
    out = _option("--out")
    mount = next(m for m in CONTAINER["volumeMounts"] if m["mountPath"] == out)
    volume = next(v for v in POD["volumes"] if v["name"] == mount["name"])
    assert f"PersistentVolumeClaim/{volume['persistentVolumeClaim']['claimName']}" in DOCS
    assert CONTAINER["securityContext"]["readOnlyRootFilesystem"] is True
    assert POD["securityContext"]["runAsNonRoot"] is True
