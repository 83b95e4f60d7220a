"""The Kubernetes manifests in deploy/k8s, by ``Kind/name``: what the schema tests check and the
container tests run."""

from __future__ import annotations

from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") != "Kustomization":
                found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found
