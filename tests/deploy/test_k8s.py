"""deploy/k8s: valid against the Kubernetes JSON schemas (kubernetes-validate, offline), and the
properties hospital IT relies on: probes, limits, non-root read-only pods, Secrets, terminology mount."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from k8s_manifests import K8S, manifests

from cds_service.settings import Settings

KUBERNETES_VERSION = "1.30.0"
DOCS = manifests()
DEPLOYMENT = DOCS["Deployment/hcc-cds"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


@pytest.mark.parametrize("name", sorted(DOCS))
def test_manifest_is_valid_kubernetes(name):
    kubernetes_validate.validate(DOCS[name], KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == expected


def test_probes_resources_and_security():
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(CONTAINER["resources"]["requests"])
    assert {"cpu", "memory"} <= set(CONTAINER["resources"]["limits"])
    assert POD["securityContext"]["runAsNonRoot"] is True and POD["securityContext"]["runAsUser"] != 0
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root needs a writable /tmp for gunicorn, metrics files and matplotlib.
    assert any(m["mountPath"] == "/tmp" for m in CONTAINER["volumeMounts"])


def test_secrets_are_referenced_not_inlined():
    env = {e["name"]: e for e in CONTAINER["env"]}
    secret_names = {
        "CDS_DATABASE_URL",
        "CDS_JWT_ISSUERS",
        "CDS_JWT_JKU_ALLOWLIST",
        "CDS_SMART_SESSION_SECRET",
        "CDS_AUDIT_PATIENT_KEYS",
    }
    for name in secret_names:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "hcc-cds-secrets", "key": name}
    assert set(DOCS["Secret/hcc-cds-secrets"]["stringData"]) == secret_names
    # Every SecretStr setting is among them: none may sit in the ConfigMap.
    from pydantic import SecretStr

    secret_settings = {
        f"CDS_{n.upper()}"
        for n, f in Settings.model_fields.items()
        if SecretStr in getattr(f.annotation, "__args__", (f.annotation,))
    }
    assert secret_settings <= secret_names
    assert not secret_settings & set(DOCS["ConfigMap/hcc-cds-config"]["data"])


def test_terminology_configmap_is_mounted_where_the_setting_points(tmp_path):
    config = DOCS["ConfigMap/hcc-cds-config"]["data"]
    mount = next(m for m in CONTAINER["volumeMounts"] if m["name"] == "terminology")
    volume = next(v for v in POD["volumes"] if v["name"] == "terminology")
    terminology = DOCS[f"ConfigMap/{volume['configMap']['name']}"]["data"]
    assert config["CDS_TERMINOLOGY_PATH"] == f"{mount['mountPath']}/terminology.yaml"
    assert "terminology.yaml" in terminology

    from fhir_mappers.terminology import load_terminology

    local = tmp_path / "terminology.yaml"
    local.write_text(terminology["terminology.yaml"])
    afp = load_terminology(local).codes("labs", "afp")
    assert any(c.code == "AFP-S" for c in afp) and any(c.system == "http://loinc.org" for c in afp)


def test_configuration_is_accepted_by_settings(monkeypatch):
    """The ConfigMap plus the example Secret make a valid production Settings (JSON lists parse)."""
    for name in list(__import__("os").environ):
        if name.startswith("CDS_"):
            monkeypatch.delenv(name)
    values = {**DOCS["ConfigMap/hcc-cds-config"]["data"], **DOCS["Secret/hcc-cds-secrets"]["stringData"]}
    for e in CONTAINER["env"]:
        if "value" in e:
            values[e["name"]] = e["value"]
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.environment == "production" and settings.jwt_enforced
    assert settings.fhir_server_allowlist and settings.jwt_issuers and settings.jwt_jku_allowlist
    known = {f"CDS_{n.upper()}" for n in Settings.model_fields} | {"HOST", "PORT"}
    unknown = {n for n in values if n.startswith("CDS_")} - known
    assert not unknown, f"settings that do not exist: {unknown}"


def test_service_and_autoscaler_target_the_deployment():
    service = DOCS["Service/hcc-cds"]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == CONTAINER["ports"][0]["name"]
    hpa = DOCS["HorizontalPodAutoscaler/hcc-cds"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hcc-cds"}
    assert hpa["spec"]["minReplicas"] >= 2
