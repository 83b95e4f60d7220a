"""The sandbox's servers, each on a free loopback port: the Node FHIR server (``fhir_server/``,
Medplum's router over its in-memory repository) and the patients loaded into it.

The end-to-end tests start the same pieces, so a fix here is a fix for both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

FHIR_SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
START_SECONDS = 30
TIMEOUT = 30


class SandboxError(RuntimeError):
    """A piece cannot start; the message says how to install what is missing."""


@dataclass
class FhirServer:
    process: subprocess.Popen[str]
    base: str

    @property
    def origin(self) -> str:
        return self.base.rsplit("/fhir", 1)[0]

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_fhir_server(smart_configuration: dict[str, Any], port: int = 0) -> FhirServer:
    """Start ``node server.mjs`` and wait for its ``LISTENING <base>`` line."""
    node = shutil.which("node")
    if node is None:
        raise SandboxError("node is not installed; the sandbox FHIR server needs Node.js 20.19+")
    if not (FHIR_SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        raise SandboxError("FHIR server dependencies missing: run bash scripts/test-setup.d/node-fhir.sh (npm ci)")
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=FHIR_SERVER_DIR,
        env={**os.environ, "PORT": str(port), "SMART_CONFIGURATION": json.dumps(smart_configuration)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    timer = threading.Timer(START_SECONDS, process.kill)  # a server that never says LISTENING fails
    timer.start()
    try:
        for line in stdout:
            lines.append(line)
            if line.startswith("LISTENING "):
                # Keep draining its output, or a chatty server would block on a full pipe.
                threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
                return FhirServer(process, line.split()[1])
    finally:
        timer.cancel()
    process.wait()
    raise SandboxError("FHIR server did not start:\n" + "".join(lines[-40:]))


def post_transactions(fhir_base: str, bundles: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """POST each (name, transaction Bundle); a refused one stops the start with its name."""
    with requests.Session() as session:
        for name, bundle in bundles:
            response = session.post(
                fhir_base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=TIMEOUT
            )
            if response.status_code != 200:
                raise SandboxError(f"{name}: the FHIR server refused it: {response.status_code} {response.text[:500]}")
