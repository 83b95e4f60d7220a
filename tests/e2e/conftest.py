"""End-to-end stack, started once per test session, all on loopback, from the sandbox's pieces
(``cds_sandbox``: one FHIR test server, one auth server, one EHR simulator for tests and demo):

1. the SMART authorization server (Authlib, in a thread) — its URL must be known first;
2. the FHIR server (Node, ``cds_sandbox/fhir_server/server.mjs``: Medplum's router over its
   in-memory repository), told the auth server's endpoints so it serves
   ``{iss}/.well-known/smart-configuration``; the test patients (``cds_sandbox/patients``) are
   loaded into it with transaction Bundles;
3. the CDS service itself (``create_app``, threaded werkzeug server);
4. Debian's Chromium driven by Playwright (``browser.py``);
5. when a test asks for it, a proxy in front of the FHIR server that collapses every `//` in the
   URLs it forwards, as smart-launcher-v2's FHIR proxy does (``cds_sandbox/collapsing_proxy.py``).

Nothing is skipped when a piece is missing: the fixture fails and says how to install it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from cds_sandbox.auth_server import AuthServer, smart_configuration
from cds_sandbox.collapsing_proxy import CollapsingProxy
from cds_sandbox.ehr_simulator import EhrSimulator
from cds_sandbox.patients import own_patients
from cds_sandbox.stack import SandboxError, post_transactions, start_fhir_server
from cds_service import create_app
from cds_service.settings import Settings

from .browser import artifacts, browser, page  # noqa: F401  (fixtures for every e2e test)

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


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # The auth server checks `aud` against the FHIR base, which exists only once Node listens:
    # start Node first with the auth server's (already bound) URL, then tell the auth server.
    auth = AuthServer(fhir_base="", client_id=CLIENT_ID)
    try:
        fhir = start_fhir_server(smart_configuration(auth.url))
        fhir_base = fhir.base
        auth.set_fhir_base(fhir_base)
        auth.start()
        post_transactions(fhir_base, ((patient.id, patient.transaction()) for patient in own_patients()))
    except SandboxError as exc:
        pytest.fail(str(exc))
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
        fhir.stop()


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
