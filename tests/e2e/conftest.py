"""End-to-end stack, started once per test session, all on loopback:

1. the SMART authorization server (Authlib, in a thread) — its URL must be known first;
2. the FHIR server (Node, ``fhir_server/server.mjs``: Medplum's router over its in-memory
   repository), told the auth server's endpoints so it serves
   ``{iss}/.well-known/smart-configuration``; the test patients are loaded into it with
   transaction Bundles from ``patients/``;
3. the CDS service itself (``create_app``, threaded werkzeug server);
4. Debian's Chromium driven by Playwright (``executable_path``; never a downloaded browser);
5. when a test asks for it, a proxy in front of the FHIR server that collapses every `//` in the
   URLs it forwards, as smart-launcher-v2's FHIR proxy does (``collapsing_proxy.py``).

Nothing is skipped when a piece is missing: the fixture fails and says how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from processes import stop
from werkzeug.serving import make_server

from cds_service import create_app
from cds_service.settings import Settings

from .collapsing_proxy import CollapsingProxy
from .ehr_simulator import EhrSimulator
from .smart_auth_server import AuthServer, smart_configuration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FHIR_SERVER_DIR = HERE / "fhir_server"
PATIENTS = HERE / "patients"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
CLIENT_ID = "hcc-cds-smart-app"
FIRST_LINE = "hcc-first-line"
SECOND_LINE = "hcc-second-line"


@dataclass
class Stack:
    fhir_base: str
    auth: AuthServer
    cds_url: str

    def ehr(self) -> EhrSimulator:
        return EhrSimulator(cds_base=self.cds_url, fhir_base=self.fhir_base, auth_base=self.auth.url)


def _start_fhir_server(smart_config: dict) -> tuple[subprocess.Popen, str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the e2e FHIR server needs Node.js 20+")
    if not (FHIR_SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.fail("FHIR server dependencies missing: run scripts/test-setup.d/node-fhir.sh (npm ci)")
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=FHIR_SERVER_DIR,
        env={**os.environ, "PORT": "0", "SMART_CONFIGURATION": json.dumps(smart_config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    timer = threading.Timer(30, process.kill)  # a server that never says LISTENING fails the run
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("LISTENING "):
                threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
                return process, line.split()[1]
    finally:
        timer.cancel()
    pytest.fail("FHIR server did not start:\n" + "".join(lines[-40:]))


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # The auth server checks `aud` against the FHIR base, which exists only once Node listens:
    # start Node first with the auth server's (already bound) URL, then tell the auth server.
    auth = AuthServer(fhir_base="", client_id=CLIENT_ID)
    process, fhir_base = _start_fhir_server(smart_configuration(auth.url))
    auth.set_fhir_base(fhir_base)
    auth.start()
    for bundle in sorted(PATIENTS.glob("*.json")):
        response = requests.post(
            fhir_base, data=bundle.read_bytes(), headers={"Content-Type": "application/fhir+json"}, timeout=30
        )
        assert response.status_code == 200, f"{bundle.name}: {response.status_code} {response.text[:500]}"
    tmp = tmp_path_factory.mktemp("cds")
    settings = Settings(database_url=f"sqlite:///{tmp}/feedback.sqlite3", smart_client_id=CLIENT_ID)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    cds_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    auth.allow_redirect_uri(f"{cds_url}/smart/app")
    try:
        yield Stack(fhir_base=fhir_base, auth=auth, cds_url=cds_url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        auth.stop()
        stop(process, timeout=10)


@pytest.fixture(scope="session")
def collapsing_proxy(stack) -> Iterator[CollapsingProxy]:
    """The e2e FHIR server behind a proxy that collapses every `//` in the URLs it forwards, as
    smart-launcher-v2's does; its base is also a valid SMART `iss` / `aud`."""
    proxy = CollapsingProxy(stack.fhir_base).start()
    stack.auth.add_proxy_base(proxy.base)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright. Fails loudly (never skips) when it cannot start."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: run scripts/test-setup.d/chromium.sh (apt-get install chromium)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:
        playwright.stop()
        pytest.fail(f"Chromium did not start: {exc}")
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
