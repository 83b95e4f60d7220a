"""The image, built from the Dockerfile and run as hospital IT runs it: non-root, read-only root
file system, every capability dropped, PostgreSQL as its database, reached only through its
published port."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fhir_stub import FhirStub
from hook_calls import check_response
from json_server import JsonServer
from packaging.utils import canonicalize_name
from podman_kit import (
    ARTIFACTS,
    PODMAN_ENV,
    SELECT,
    container_url,
    first_line_call,
    log_problems,
    podman,
    record,
    run_command,
    wait_healthy,
)
from processes import ROOT, free_port
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.container

SESSION_SECRET = "container-test-session-secret-0123456789abcdef"


class Service:
    def __init__(self, image: str, database_url: str, names: list[str], **env: str):
        self.name = f"hcc-cds-test-{uuid.uuid4().hex[:8]}"
        names.append(self.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "CDS_DATABASE_URL": container_url(database_url),
            "CDS_SMART_SESSION_SECRET": SESSION_SECRET,
            "CDS_WORKERS": "2",
            **env,
        }
        started = time.monotonic()
        podman(*run_command(image, self.name, self.port, self.env))
        wait_healthy(self.url, self.name)
        self.start_seconds = time.monotonic() - started

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def database(postgres_cluster):
    return postgres_cluster.new_database()


@pytest.fixture(scope="module")
def service(image, database):
    names: list[str] = []
    try:
        running = Service(image, database, names)
        record("container_start_seconds", running.start_seconds)
        yield running
    finally:
        for name in names:
            podman("rm", "--force", "--time", "0", name, check=False)


def test_runs_as_uid_10001_on_a_read_only_root_with_no_capabilities(service):
    state = json.loads(podman("inspect", service.name).stdout)[0]
    assert state["Config"]["User"] == "10001:10001"
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", service.name, "id", "-u").stdout.strip() == "10001"
    status = podman("exec", service.name, "cat", "/proc/1/status").stdout
    assert re.search(r"CapEff:\s+0+\n", status), "no effective capability"
    denied = podman("exec", service.name, "touch", "/opt/hcc-cds/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", service.name, "touch", "/tmp/written", check=False).returncode == 0


def test_discovery_lists_both_services(service):
    discovery = requests.get(f"{service.url}/cds-services", timeout=10)
    assert discovery.status_code == 200
    assert {s["id"] for s in discovery.json()["services"]} == {SELECT, "hcc-systemic-therapy-sign"}


def test_first_line_call_answers_a_card_with_a_smart_link(service):
    response = requests.post(f"{service.url}/cds-services/{SELECT}", json=first_line_call(), timeout=30)
    assert response.status_code == 200, response.text
    check_response(response.json())
    cards = response.json()["cards"]
    assert cards and cards[0]["indicator"] == "warning", cards
    assert any(link["type"] == "smart" for card in cards for link in card["links"])


def test_smart_launch_redirects_to_the_ehr_authorization_endpoint(service):
    with JsonServer() as ehr:  # an EHR's FHIR base with only the launch's discovery document
        iss = container_url(f"{ehr.url}/fhir")
        ehr.routes["/fhir/.well-known/smart-configuration"] = {
            "authorization_endpoint": iss.replace("/fhir", "/auth/authorize"),
            "token_endpoint": iss.replace("/fhir", "/auth/token"),
            "capabilities": ["launch-ehr", "client-public", "context-ehr-patient"],
            "code_challenge_methods_supported": ["S256"],
        }
        response = requests.get(
            f"{service.url}/smart/launch",
            params={"iss": iss, "launch": "launch-xyz"},
            allow_redirects=False,
            timeout=10,
        )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == iss.replace("/fhir", "/auth/authorize")
    query = parse_qs(location.query)
    assert query["aud"] == [iss] and query["launch"] == ["launch-xyz"]
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]


def test_metrics_count_the_calls(service):
    requests.get(f"{service.url}/cds-services", timeout=10)
    metrics = requests.get(f"{service.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert re.search(r"cds_http_requests_total\{[^}]*\} [1-9]", metrics.text)
    assert "cds_model_info" in metrics.text


def test_healthcheck_of_the_image_passes(image, service):
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    healthcheck = config["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "/opt/hcc-cds/bin/hcc-cds", "healthcheck"]
    started = time.monotonic()
    result = podman("healthcheck", "run", service.name, check=False)
    record("healthcheck_seconds", time.monotonic() - started)
    assert result.returncode == 0, f"unhealthy: {result.stdout} {result.stderr}"


def test_logs_hold_no_error(service):
    requests.get(f"{service.url}/cds-services", timeout=10)
    logs = service.logs()
    assert "Booting worker" in logs
    assert not log_problems(logs), "\n".join(log_problems(logs))


def test_sigterm_drains_in_flight_calls_and_writes_their_audit_rows(image, postgres_cluster, cleanup_containers):
    """SIGTERM while calls are in flight (each waits 2 s on the EHR's FHIR server): every one is
    answered with its cards, the container exits 0, and every call's audit row is in PostgreSQL."""
    database = postgres_cluster.new_database()
    in_flight = 12
    with FhirStub("ok", behaviours={"Procedure": "slow"}, slow_seconds=2.0) as fhir:
        service = Service(image, database, cleanup_containers, CDS_FETCH_BUDGET_SECONDS="5", CDS_THREADS="8")

        def call() -> dict:
            body = first_line_call()
            del body["prefetch"]["procedures"]  # fetched from the slow FHIR server
            body["fhirServer"] = container_url(fhir.url)
            response = requests.post(f"{service.url}/cds-services/{SELECT}", json=body, timeout=30)
            assert response.status_code == 200, response.text
            return {"hookInstance": body["hookInstance"], "cards": response.json()["cards"]}

        with ThreadPoolExecutor(in_flight) as pool:
            calls = [pool.submit(call) for _ in range(in_flight)]
            deadline = time.monotonic() + 30
            while sum(r.resource_type == "Procedure" for r in fhir.seen()) < in_flight:
                assert time.monotonic() < deadline, "the calls never reached the FHIR server"
                time.sleep(0.05)
            stopping = time.monotonic()
            podman("kill", "--signal", "TERM", service.name)
            answered = [c.result(timeout=60) for c in calls]
        exit_code = podman("wait", service.name, timeout=60).stdout.strip()
    record("sigterm_to_exit_seconds", time.monotonic() - stopping)
    assert exit_code == "0"
    assert all(a["cards"] for a in answered)
    engine = create_engine(database)
    with engine.connect() as connection:
        audited = set(connection.execute(text("SELECT hook_instance FROM assessment_audit")).scalars())
    engine.dispose()
    assert {a["hookInstance"] for a in answered} <= audited, "audit rows lost at shutdown"
    logs = service.logs()
    assert not log_problems(logs), "\n".join(log_problems(logs))


def test_image_size_and_sbom(image):
    """At most 350 MB (605 MB while it carried the training stack, issue 23); the SBOM lists every
    locked package at its version."""
    size_mb = json.loads(podman("image", "inspect", image).stdout)[0]["Size"] / 1e6
    record("image_size_mb", size_mb)
    saved = subprocess.run(
        f"podman save {image} | gzip -1 | wc -c", shell=True, capture_output=True, text=True,
        env=PODMAN_ENV, timeout=300,
    )  # fmt: skip
    record("image_size_gzip_mb", int(saved.stdout.strip()) / 1e6)
    print(f"image {image}: {size_mb:.0f} MB, {int(saved.stdout.strip()) / 1e6:.0f} MB gzipped")
    assert size_mb <= 350, "the image grew: see deploy/build-steps.sh and pyproject's `train` extra"

    sbom_text = podman("run", "--rm", "--entrypoint", "cat", image, "/opt/hcc-cds/sbom.cdx.json").stdout
    (ARTIFACTS / "sbom.cdx.json").write_text(sbom_text)
    sbom = json.loads(sbom_text)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["name"] == "hcc-sorafenib-cds"
    components = {canonicalize_name(c["name"]): c["version"] for c in sbom["components"]}
    sys.path.insert(0, str(ROOT / "tests" / "deploy"))
    from test_lock import pins

    locked = {name: version for name, (version, _) in pins(ROOT / "requirements.lock").items()}
    assert components == locked, "the image's packages differ from requirements.lock"
    assert all(c.get("purl", "").startswith("pkg:pypi/") for c in sbom["components"])


def test_the_image_holds_neither_the_sandbox_nor_the_training_stack(image):
    """The sandbox's authorization server has a fixed password, and serving needs no fitters."""
    modules = ("cds_sandbox", "sklearn", "lifelines", "matplotlib")
    probe = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    found = podman("run", "--rm", "--entrypoint", "/opt/hcc-cds/bin/python", image, "-c", probe).stdout.strip()
    assert found == "[]"
