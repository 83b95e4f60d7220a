"""``python -m cds_sandbox [--port N]``: the whole demo on loopback, stopped by Ctrl-C.

Starts, in this order: the SMART authorization server (a thread), the FHIR server (Node) with the
synthetic patients, the CDS service (``python -m cds_service``, demo settings, a throw-away
SQLite store) and the demo EHR page; prints the page's URL. Ctrl-C or SIGTERM stops every
process it started, in reverse order, and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import requests
from werkzeug.serving import make_server

from .auth_server import AuthServer, smart_configuration
from .demo_ehr import create_demo_ehr
from .patients import all_patients
from .stack import SandboxError, post_transactions, start_fhir_server, stop_process

CLIENT_ID = "hcc-cds-smart-app"
SERVICE_START_SECONDS = 90


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The service as deployed (gunicorn via ``python -m cds_service``), one worker, demo settings."""
    port = _free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CDS_ENVIRONMENT": "demo",
        "CDS_WORKERS": "1",
        "CDS_DATABASE_URL": f"sqlite:///{workdir}/feedback.sqlite3",
        "CDS_SMART_CLIENT_ID": CLIENT_ID,
        "CDS_LOG_LEVEL": "WARNING",
        # The service's own fetch (the "no prefetch" switch) gets more than the default 1.5 s: the
        # sandbox often runs on a busy laptop, and a cut-short fetch would show as missing data.
        "CDS_FETCH_BUDGET_SECONDS": "5",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
    }
    log = (workdir / "service.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cds_service"], env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVICE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.2)
    stop_process(process)
    raise SandboxError("the CDS service did not start:\n" + (workdir / "service.log").read_text()[-3000:])


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(port: int) -> int:
    # Ctrl-C even when started in the background (where SIGINT comes ignored); `kill` as cleanly.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per page request in the terminal
    with ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cds-sandbox-")))
        auth = AuthServer(fhir_base="", client_id=CLIENT_ID)
        fhir = start_fhir_server(smart_configuration(auth.url))
        cleanup.callback(fhir.stop)
        auth.set_fhir_base(fhir.base)
        auth.start()
        cleanup.callback(auth.stop)
        patients = all_patients()
        post_transactions(fhir.base, ((p.id, p.transaction()) for p in patients))
        service, cds_url = start_service(workdir)
        cleanup.callback(stop_process, service)
        auth.allow_redirect_uri(f"{cds_url}/smart/app")

        ehr_app = create_demo_ehr(cds_base=cds_url, fhir_base=fhir.base, auth_base=auth.url, patients=patients)
        server = make_server("127.0.0.1", port, ehr_app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        cleanup.callback(server.server_close)
        cleanup.callback(server.shutdown)

        print(f"FHIR server    {fhir.base} ({len(patients)} synthetic patients)", flush=True)
        print(f"SMART sign-in  {auth.url} (user clinician, password test-password)", flush=True)
        print(f"CDS service    {cds_url}/cds-services", flush=True)
        print(f"Demo EHR       http://127.0.0.1:{server.server_port}/", flush=True)
        print("Open the demo EHR in a browser; Ctrl-C stops everything.", flush=True)
        try:
            while service.poll() is None:
                time.sleep(0.5)
            print("the CDS service stopped; the end of its log:", file=sys.stderr)
            sys.stderr.write((workdir / "service.log").read_text()[-3000:])
            return 1
        except KeyboardInterrupt:
            print("stopping…", flush=True)
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="the demo EHR's port on 127.0.0.1 (0: any free one)")
    args = parser.parse_args(argv)
    try:
        return run(args.port)
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the demo EHR's port is taken
        print(f"sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while starting: everything started is already stopped
        return 130


if __name__ == "__main__":
    sys.exit(main())
