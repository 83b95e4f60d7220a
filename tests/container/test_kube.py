"""deploy/k8s run with `podman kube play`: the ConfigMaps and the Deployment as written (production
settings, non-root, read-only root, the terminology mount), PostgreSQL as the database.

What podman 4.3 cannot run, and what stands in for it (docs/integration.md §1 says the same):
- Secret: kube play stores it in a form its own env lookup then refuses ("not valid JSON", podman
  issue #16269), so the test creates the podman secret kube play reads, from the same keys.
- Deployment replicas and its rolling update: each replica is the Deployment played under its own
  name (replicas: 1) with a hostPort on 127.0.0.1; the roll follows the Deployment's strategy
  (maxSurge 1, maxUnavailable 0) and the preStop hook, step by step, as the controller would.
- Service: "does not contain any supported kube kind"; ServiceProxy stands in for kube-proxy and
  the endpoints controller (round robin over ready replicas, a terminating one removed first).
- HorizontalPodAutoscaler: not run (no metrics pipeline here); only schema-checked in tests/deploy.
- Readiness/startup probes: kube play ignores them; the test waits on /readyz as a kubelet would.
- PostgreSQL: no image can be pulled here, so the database is the test session's own PostgreSQL
  on this machine, which the Secret's URL names (10.0.2.2 from inside the pods).
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from json_server import JsonServer, es384_jwks
from k8s_manifests import manifests
from podman_kit import NETWORK, SELECT, container_url, first_line_call, log_problems, podman, record
from processes import free_port
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.container

ISSUER = "https://ehr.hospital.example.org"


MANIFESTS = manifests()
DEPLOYMENT = MANIFESTS["Deployment/hcc-cds"]
PUBLIC_BASE_URL = MANIFESTS["ConfigMap/hcc-cds-config"]["data"]["CDS_PUBLIC_BASE_URL"]


class Ehr:
    """The EHR's signing key, its JWK Set served on this machine, and signed bearer tokens."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP384R1())
        self._server = JsonServer(default=es384_jwks(self.key.public_key(), "ehr-1"))
        self.jwks_url = container_url(f"{self._server.url}/jwks.json")

    def token(self, path: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": f"{PUBLIC_BASE_URL}{path}",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": "ehr-1", "typ": "JWT"})

    def post(self, base: str, path: str, body: dict, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token(path)}", "Connection": "close"}
        return requests.post(f"{base}{path}", json=body, headers=headers, timeout=30)

    def close(self) -> None:
        self._server.close()


def feedback_for(card: dict) -> dict:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": now}]}


class ServiceProxy:
    """Stands in for the Service: each new connection goes to the next ready endpoint (round robin);
    a removed endpoint keeps the connections it has, as with kube-proxy."""

    def __init__(self):
        self.endpoints: list[str] = []  # "127.0.0.1:PORT"
        self._lock = threading.Lock()
        self._turn = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def set_endpoints(self, endpoints: list[str]) -> None:
        with self._lock:
            self.endpoints = list(endpoints)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                endpoint = self.endpoints[self._turn % len(self.endpoints)]
                self._turn += 1
            host, port = endpoint.split(":")
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@dataclass
class Replica:
    name: str
    port: int
    manifest: Path

    @property
    def pod(self) -> str:
        return f"{self.name}-pod-0"

    @property
    def container(self) -> str:
        return f"{self.pod}-{DEPLOYMENT['spec']['template']['spec']['containers'][0]['name']}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Plays deploy/k8s with podman: the Secret as a podman secret, one Deployment per replica."""

    image: str
    secret: dict[str, str]
    workdir: Path
    replicas: list[Replica] = field(default_factory=list)

    def __post_init__(self) -> None:
        container = DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]
        podman("tag", self.image, container["image"])  # imagePullPolicy IfNotPresent: nothing is pulled
        name = MANIFESTS["Secret/hcc-cds-secrets"]["metadata"]["name"]
        assert set(self.secret) == set(MANIFESTS["Secret/hcc-cds-secrets"]["stringData"])
        podman("secret", "rm", name, check=False)
        data = {key: base64.b64encode(value.encode()).decode() for key, value in self.secret.items()}
        podman("secret", "create", name, "-", input=json.dumps(data))

    def play(self, name: str) -> Replica:
        deployment = copy.deepcopy(DEPLOYMENT)
        deployment["metadata"]["name"] = name
        deployment["spec"]["replicas"] = 1
        port = free_port()
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
        documents = [MANIFESTS["ConfigMap/hcc-cds-config"], MANIFESTS["ConfigMap/hcc-cds-terminology"], deployment]
        manifest = self.workdir / f"{name}.yaml"
        manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        podman("kube", "play", "--network", NETWORK, str(manifest), timeout=180)
        replica = Replica(name, port, manifest)
        self.replicas.append(replica)
        return replica

    def wait_ready(self, replica: Replica, within: float = 120) -> None:
        """The readiness probe, as the kubelet runs it (kube play does not)."""
        probe = DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{replica.url}{probe}", timeout=3).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{replica.name} not ready: {self.logs(replica)[-4000:]}")

    def terminate(self, replica: Replica) -> None:
        """The kubelet's pod termination: preStop, then SIGTERM, SIGKILL after the grace period."""
        spec = DEPLOYMENT["spec"]["template"]["spec"]
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        podman("exec", replica.container, *pre_stop, timeout=60)
        podman("pod", "stop", "--time", str(spec["terminationGracePeriodSeconds"]), replica.pod, timeout=90)

    def logs(self, replica: Replica) -> str:
        result = podman("logs", replica.container, check=False)
        return result.stdout + result.stderr

    def exit_code(self, replica: Replica) -> str:
        return podman("inspect", replica.container, "--format", "{{.State.ExitCode}}").stdout.strip()

    def down(self) -> None:
        for replica in self.replicas:
            podman("kube", "down", str(replica.manifest), check=False, timeout=120)
        podman("secret", "rm", MANIFESTS["Secret/hcc-cds-secrets"]["metadata"]["name"], check=False)


@pytest.fixture(scope="module")
def ehr():
    signer = Ehr()
    yield signer
    signer.close()


@pytest.fixture(scope="module")
def database(postgres_cluster):
    return postgres_cluster.new_database()


@pytest.fixture(scope="module")
def cluster(image, ehr, database, tmp_path_factory):
    secret = {
        "CDS_DATABASE_URL": container_url(database),
        "CDS_JWT_ISSUERS": json.dumps({ISSUER: ehr.jwks_url}),
        "CDS_JWT_JKU_ALLOWLIST": json.dumps([ehr.jwks_url]),
        "CDS_SMART_SESSION_SECRET": "kube-test-session-secret-" + uuid.uuid4().hex,
        "CDS_AUDIT_PATIENT_KEYS": json.dumps({"kube-test": "kube-test-patient-key-" + uuid.uuid4().hex}),
    }
    running = Cluster(image, secret, tmp_path_factory.mktemp("k8s"))
    try:
        started = time.monotonic()
        for name in ("hcc-cds-a", "hcc-cds-b"):  # both at once: the migrations take an advisory lock
            running.play(name)
        for replica in running.replicas:
            running.wait_ready(replica)
        record("kube_two_replicas_ready_seconds", time.monotonic() - started)
        yield running
    finally:
        running.down()


def test_pods_run_as_the_manifest_says(cluster):
    replica = cluster.replicas[0]
    state = json.loads(podman("inspect", replica.container).stdout)[0]
    assert state["Config"]["User"] == "10001:10001"
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert not state["EffectiveCaps"]
    env = dict(e.split("=", 1) for e in state["Config"]["Env"])
    assert env["CDS_ENVIRONMENT"] == "production" and env["CDS_PUBLIC_BASE_URL"] == PUBLIC_BASE_URL
    mounts = {m["Destination"] for m in state["Mounts"]}
    assert {"/etc/hcc-cds/terminology", "/tmp"} <= mounts
    assert not log_problems(cluster.logs(replica)), "\n".join(log_problems(cluster.logs(replica)))


def test_migrations_applied_once_to_postgresql(cluster, database):
    engine = create_engine(database)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        tables = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    engine.dispose()
    assert len(versions) == 1
    assert {"feedback", "assessment_audit", "assessment_card", "jwt_replay"} <= tables


def test_hook_call_needs_the_ehr_jwt(cluster, ehr):
    replica = cluster.replicas[0]
    path = f"/cds-services/{SELECT}"
    assert requests.post(f"{replica.url}{path}", json=first_line_call(), timeout=30).status_code == 401
    response = ehr.post(replica.url, path, first_line_call())
    assert response.status_code == 200, response.text
    assert response.json()["cards"][0]["indicator"] == "warning"


def test_replicas_share_jwt_replay_state_and_feedback(cluster, ehr, database):
    a, b = cluster.replicas[:2]
    path = f"/cds-services/{SELECT}"
    token = ehr.token(path)
    first = ehr.post(a.url, path, first_line_call(), token)
    assert first.status_code == 200, first.text
    replayed = ehr.post(b.url, path, first_line_call(), token)
    assert replayed.status_code == 401 and "replay" in replayed.text.lower(), replayed.text

    card = first.json()["cards"][0]
    time.sleep(0.5)  # a clinician's decision takes longer than the audit row's write
    stored = ehr.post(b.url, f"{path}/feedback", feedback_for(card))
    assert stored.status_code == 200, stored.text
    engine = create_engine(database)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT count(*) FROM feedback WHERE card_uuid = :c"), {"c": card["uuid"]}
        ).scalar()
    engine.dispose()
    assert rows == 1


def test_rolling_replacement_loses_no_call_and_no_feedback(cluster, ehr, database):
    """An EHR keeps calling through the Service while replica b is replaced by c, the Deployment's
    way: c started and ready first (maxSurge 1, maxUnavailable 0), b taken off the Service, its
    preStop run, then SIGTERM. Every call answered with cards, every feedback stored."""
    a, b = cluster.replicas[:2]
    service = ServiceProxy()
    service.set_endpoints([a.endpoint, b.endpoint])
    path = f"/cds-services/{SELECT}"
    stop = threading.Event()
    outcomes: list[tuple[str, int, int]] = []  # (card uuid, hook status, feedback status)
    lock = threading.Lock()

    def simulate_ehr() -> None:
        while not stop.is_set():
            call = ehr.post(service.url, path, first_line_call())
            card_uuid, feedback_status = "", 0
            if call.status_code == 200:
                card = call.json()["cards"][0]
                card_uuid = card["uuid"]
                time.sleep(0.3)
                feedback_status = ehr.post(service.url, f"{path}/feedback", feedback_for(card)).status_code
            with lock:
                outcomes.append((card_uuid, call.status_code, feedback_status))

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(simulate_ehr) for _ in range(4)]
            time.sleep(2)
            c = cluster.play("hcc-cds-c")
            cluster.wait_ready(c)
            service.set_endpoints([a.endpoint, b.endpoint, c.endpoint])
            time.sleep(1)
            service.set_endpoints([a.endpoint, c.endpoint])  # b terminating: off the Service first
            cluster.terminate(b)
            time.sleep(2)
            stop.set()
            for client in clients:
                client.result(timeout=60)
    finally:
        stop.set()
        service.close()
    record("kube_roll_seconds", time.monotonic() - started)

    assert len(outcomes) >= 20, f"too few calls during the roll: {len(outcomes)}"
    failed = [o for o in outcomes if o[1] != 200 or o[2] != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} calls or feedback failed: {failed[:5]}"
    assert cluster.exit_code(b) == "0", cluster.logs(b)[-3000:]
    assert "Shutting down: Master" in cluster.logs(b)
    cards = [o[0] for o in outcomes]
    engine = create_engine(database)
    with engine.connect() as connection:
        stored = set(connection.execute(text("SELECT card_uuid FROM feedback")).scalars())
        audited = set(connection.execute(text("SELECT card_uuid FROM assessment_card")).scalars())
    engine.dispose()
    assert set(cards) <= stored, "feedback rows lost"
    assert set(cards) <= audited, "audit rows lost"
    record("kube_roll_calls", len(outcomes))
    for replica in (a, b, c):
        assert not log_problems(cluster.logs(replica)), "\n".join(log_problems(cluster.logs(replica)))
