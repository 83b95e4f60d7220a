"""Slow clients against the service as shipped (``python -m cds_service``, production settings,
2 workers × 8 threads, no proxy in front): 64 connections that drip their request, header lines
or body bytes every ~2 s, must not stop the service answering everyone else (issue 22). Each
dripping connection is cut once the read deadline for a whole request has passed, and a worker
holds no more connections than its limit. What the server arrangement (waitress in each gunicorn
worker, cds_service/waitress_worker.py) must keep: a request in progress at SIGTERM is answered,
and a body over the limit is refused in the app's JSON error shape."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from fhir_stub import FhirStub
from hardening_kit import SELECT, gunicorn_service, sorafenib_call, sorafenib_call_to_fetch
from json_server import JsonServer, es384_jwks
from slow_clients import SlowClients

pytestmark = pytest.mark.slow  # each test waits out drips and deadlines on purpose

SLOW_CONNECTIONS = 64  # half drip header lines, half a declared body
DRIP_EVERY = 2.0
PROMPT = 5.0  # generous: a liveness bound, not a speed target
READ_DEADLINE = 12  # CDS_REQUEST_READ_SECONDS for this test: short enough to watch it act
ISSUER = "https://ehr.slow-clients.test"
PUBLIC_BASE_URL = "https://cds.hospital.example.org"  # what the JWT audience names (behind TLS)
HOOK_PATH = f"/cds-services/{SELECT}"


class Issuer:
    """The EHR: an ES384 key whose JWKS is served on loopback, and a fresh token per call."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.server = JsonServer(default=es384_jwks(self.key.public_key(), "k1"))
        self.jwks_url = f"{self.server.url}/jwks.json"

    def bearer(self, path: str) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "ehr",
            "aud": PUBLIC_BASE_URL + path,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return {"Authorization": "Bearer " + jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": "k1"})}

    def close(self):
        self.server.close()


@pytest.fixture
def production_service(tmp_path):
    issuer = Issuer()
    env = {
        "CDS_ENVIRONMENT": "production",
        "CDS_FHIR_SERVER_ALLOWLIST": '["https://fhir.hospital.example.org/r4"]',
        "CDS_JWT_ISSUERS": json.dumps({ISSUER: issuer.jwks_url}),
        "CDS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "CDS_AUDIT_PATIENT_KEYS": '{"test-2026": "test-only-patient-key-of-at-least-32-bytes"}',
        "CDS_REQUEST_READ_SECONDS": str(READ_DEADLINE),
        "CDS_LOG_LEVEL": "WARNING",
    }
    try:
        # The workers and threads as shipped (2 × 8): the issue was seen with them.
        with gunicorn_service(tmp_path, **env) as service:
            yield service, issuer
    finally:
        issuer.close()


def timed(call) -> tuple[requests.Response | Exception, float]:
    started = time.monotonic()
    try:
        answer = call()
    except requests.RequestException as exc:
        answer = exc
    return answer, time.monotonic() - started


def test_other_clients_are_answered_while_64_slow_connections_drip(production_service):
    service, issuer = production_service
    with SlowClients(service.url, SLOW_CONNECTIONS, every=DRIP_EVERY) as slow:
        time.sleep(DRIP_EVERY + 0.5)  # every slow connection has started and dripped once
        late = []
        for round_ in range(3):  # fresh connections each round: the kernel spreads them over both workers
            calls = {
                "/healthz": lambda: requests.get(f"{service.url}/healthz", timeout=PROMPT * 2),
                "discovery": lambda: requests.get(
                    f"{service.url}/cds-services", timeout=PROMPT * 2, headers=issuer.bearer("/cds-services")
                ),
                "hook call": lambda: requests.post(
                    f"{service.url}{HOOK_PATH}",
                    json=sorafenib_call(),
                    headers=issuer.bearer(HOOK_PATH),
                    timeout=PROMPT * 2,
                ),
            }
            for name, call in calls.items():
                answer, elapsed = timed(call)
                ok = isinstance(answer, requests.Response) and answer.status_code == 200
                if name == "hook call" and ok:
                    ok = bool(answer.json()["cards"])
                if not ok or elapsed > PROMPT:
                    status = answer.status_code if isinstance(answer, requests.Response) else type(answer).__name__
                    late.append(f"round {round_}: {name} → {status} after {elapsed:.1f} s")
        still_open = slow.open
    assert not late, f"with {still_open} slow connections open: " + "; ".join(late)
    assert still_open >= SLOW_CONNECTIONS * 0.9, f"only {still_open} slow connections were open during the checks"


def test_a_request_that_takes_longer_than_the_read_deadline_is_cut(production_service):
    service, _ = production_service
    with SlowClients(service.url, 8, every=DRIP_EVERY) as slow:
        deadline = time.monotonic() + READ_DEADLINE + 3 * DRIP_EVERY + 5
        while slow.open and time.monotonic() < deadline:
            time.sleep(0.5)
        closed = sorted(slow.closed_after)
    assert len(closed) == 8, f"{8 - len(closed)} of 8 dripping connections still open after {READ_DEADLINE} s + slack"
    assert closed[0] >= READ_DEADLINE - 1, f"a connection was cut after {closed[0]:.1f} s, before the deadline"


# -- the rest of what the server arrangement must keep or bound (demo settings suffice) ----------


def test_a_request_in_progress_is_answered_when_the_service_stops(tmp_path):
    """SIGTERM drains: a hook call waiting on a hanging FHIR server still gets its answer."""
    env = {"CDS_WORKERS": "1", "CDS_FETCH_BUDGET_SECONDS": "2", "CDS_LOG_LEVEL": "WARNING"}
    with FhirStub("hang") as hanging, gunicorn_service(tmp_path, **env) as service:
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(
                requests.post, f"{service.url}{HOOK_PATH}", json=sorafenib_call_to_fetch(hanging.url), timeout=15
            )
            time.sleep(0.5)  # the call is in the app, waiting for its fetch budget
            service.process.send_signal(signal.SIGTERM)
            answer = call.result()
        assert answer.status_code == 200, answer.text
        assert service.process.wait(timeout=15) == 0


def test_a_body_over_the_limit_is_refused_before_it_is_read_in_the_error_shape(tmp_path):
    with gunicorn_service(tmp_path, CDS_MAX_REQUEST_BYTES="65536", CDS_LOG_LEVEL="WARNING") as service:
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000000\r\n\r\n{".encode()
            )  # the rest is never sent
            sock.settimeout(5)
            answer = b""
            while chunk := sock.recv(65536):  # the server closes after the answer; it may come in pieces
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert json.loads(body)["error"] == "request_entity_too_large"


def test_a_worker_holds_at_most_its_connection_limit(tmp_path):
    env = {"CDS_WORKERS": "1", "CDS_MAX_CONNECTIONS_PER_WORKER": "8", "CDS_LOG_LEVEL": "WARNING"}
    with gunicorn_service(tmp_path, **env) as service:
        (worker,) = service.worker_pids()
        before = _sockets_of(worker)
        with SlowClients(service.url, 20, every=DRIP_EVERY) as slow:
            time.sleep(DRIP_EVERY + 1)
            held = _sockets_of(worker) - before
            assert slow.open == 20  # the rest wait in the listen backlog, not refused
        assert held <= 8, f"the worker holds {held} connections, over its limit of 8"


def _sockets_of(pid: int) -> int:
    return sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd"))
