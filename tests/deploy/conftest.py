"""Helpers for the deployment tests: run a service command as a real process and read its output."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from postgres import postgres_cluster, postgres_url  # noqa: F401  (for the PostgreSQL CLI tests)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningService:
    url: str
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_service(command: list[str], env: dict[str, str], cwd: Path, log: Path, port: int) -> Iterator[RunningService]:
    """Start ``command`` (a gunicorn-serving entrypoint), wait for /healthz, stop it afterwards."""
    full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)}
    full_env.pop("PYTHONPATH", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=full_env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{port}", log, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited ({process.returncode}): {service.output()[-3000:]}")
            try:
                if requests.get(f"{service.url}/healthz", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or too busy starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not healthy within 90 s: {service.output()[-3000:]}")
            time.sleep(0.2)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
