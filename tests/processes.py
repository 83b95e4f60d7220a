"""Real service processes for tests: start one, wait until /healthz answers, stop it.

One implementation for every suite that runs the service as deployed (gunicorn via
``python -m cds_service`` or an installed entrypoint), so start-up and shutdown behave alike.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from cds_sandbox.stack import stop_process as stop

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far (JSON log lines)."""
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    @staticmethod
    def rss_mib(pid: int) -> float:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


@contextmanager
def serving(
    command: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    port: int | None = None,
    ready_within: float = 90,
    drop_env: Sequence[str] = (),
) -> Iterator[ServiceProcess]:
    """Run `command` on 127.0.0.1:`port` (HOST/PORT in its environment), yield once healthy."""
    port = port or free_port()
    full_env = {**os.environ, **(env or {}), "HOST": "127.0.0.1", "PORT": str(port)}
    for name in drop_env:
        full_env.pop(name, None)
    with log_path.open("wb") as sink:
        process = subprocess.Popen(list(command), env=full_env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited ({process.returncode}): {service.output()[-3000:]}")
            try:
                if requests.get(f"{service.url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not healthy within {ready_within:g} s: {service.output()[-3000:]}")
            time.sleep(0.1)
        try:
            yield service
        except BaseException:  # pytest shows what is printed here beside the failure: the why
            print(f"--- {log_path.name}, last 6000 characters ---\n{service.output()[-6000:]}")
            raise
    finally:
        stop(process)
