"""Running podman for tests/container: the commands docs/integration.md §1 shows, this machine's
settings (containers.conf: no ulimits, runc), and what the tests record and read back.

Hosts the containers reach (PostgreSQL, the JWKS, FHIR and SMART stand-ins) listen on this machine's
loopback; a container on slirp4netns with allow_host_loopback reaches them as 10.0.2.2, its
gateway, which slirp4netns forwards to 127.0.0.1 here. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from processes import ROOT

HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
BASE_IMAGE = "localhost/hcc-cds-base:bookworm"
IMAGE = "localhost/hcc-cds:test"
HOST_GATEWAY = "10.0.2.2"  # this machine's loopback, as a slirp4netns container sees it
NETWORK = "slirp4netns:allow_host_loopback=true"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}

# The build, as docs/integration.md §1 gives it. The two mounts exist only for this machine, which
# reaches PyPI through a TLS-inspecting proxy: its CA bundle and a pip.conf naming it, mounted for
# the build's RUN steps only (nothing of them is in the image).
BUILD_COMMAND = [
    "podman", "build", "--format", "docker", "--pull=never", "--isolation", "chroot",
    "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
    "-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
    "-v", f"{HERE / 'pip.conf'}:/etc/pip.conf:ro",
    "-t", IMAGE, "-f", "Dockerfile", ".",
]  # fmt: skip

TIMINGS: dict[str, float] = {}


def podman(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and result.returncode:
        raise AssertionError(f"podman {' '.join(args[:3])}… exited {result.returncode}: {result.stderr[-3000:]}")
    return result


def record(name: str, value: float) -> None:
    """A figure for test-artifacts/container.json (seconds, MB) and the closing note."""
    TIMINGS[name] = round(value, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "container.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **TIMINGS}, indent=2))


def container_url(url: str) -> str:
    """A URL of this machine's loopback, as a container on slirp4netns reaches it."""
    return url.replace("127.0.0.1", HOST_GATEWAY).replace("localhost", HOST_GATEWAY)


def wait_healthy(url: str, name: str, path: str = "/healthz", within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"{name} not answering {path} within {within:g} s: {(logs.stdout + logs.stderr)[-4000:]}")


def log_problems(text: str) -> list[str]:
    """Lines of a service log that are errors: any level at ERROR or above, tracebacks, non-JSON."""
    problems = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(line)
            continue
        if entry.get("level") in ("ERROR", "CRITICAL") or "Traceback" in line:
            problems.append(line)
    return problems


def run_command(image: str, name: str, port: int, env: dict[str, str]) -> list[str]:
    """`podman run` as docs/integration.md §1 gives it (the read-only root needs a writable /tmp)."""
    command = [
        "run", "--detach", "--name", name,
        "--read-only", "--tmpfs", "/tmp:rw,size=64m", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--network", NETWORK, "--publish", f"127.0.0.1:{port}:8080",
    ]  # fmt: skip
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, image]


SELECT = "hcc-systemic-therapy-select"


def first_line_call() -> dict:
    """Vignette v01 (tests/vignettes): first-line sorafenib, AFP and ALT both high: a warning card."""
    vignettes = str(ROOT / "tests" / "vignettes")
    if vignettes not in sys.path:
        sys.path.insert(0, vignettes)
    from test_vignettes import VIGNETTES, hook_body

    body = hook_body(next(v for v in VIGNETTES if v["id"] == "v01"))
    return {**body, "hookInstance": str(uuid.uuid4())}
