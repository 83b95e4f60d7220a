"""Shared fixtures: the service runs as a real HTTP server on loopback, never a test client."""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from processes import serving
from werkzeug.serving import make_server

from cds_service import create_app
from cds_service.settings import Settings


class LiveServer:
    """A threaded werkzeug HTTP server around ``create_app(settings)`` on a free loopback port."""

    def __init__(self, settings: Settings):
        self.app = create_app(settings)
        self.settings = settings
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    @property
    def runtime(self):
        return self.app.extensions["hcc_cds"]


# Markers by what a test needs, so `-m "not e2e and not postgres and not browser and not container"`
# is a fast loop without anyone remembering to tag a test (tests/README.md).
_MARKER_BY_DIRECTORY = {"e2e": "e2e", "container": "container"}
_MARKER_BY_FIXTURE = {
    "stack": "e2e",  # the Node FHIR server and the SMART authorization server (tests/e2e/conftest.py)
    "sandbox": "e2e",  # the whole demo: python -m cds_sandbox (tests/sandbox/conftest.py)
    "postgres_cluster": "postgres",
    "postgres_url": "postgres",
    "pausable_postgres": "postgres",
    "browser": "browser",
    "page": "browser",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        top = item.path.relative_to(tests_dir).parts[0] if item.path.is_relative_to(tests_dir) else ""
        names = {_MARKER_BY_DIRECTORY[top]} if top in _MARKER_BY_DIRECTORY else set()
        names |= {_MARKER_BY_FIXTURE[f] for f in getattr(item, "fixturenames", ()) if f in _MARKER_BY_FIXTURE}
        for name in sorted(names - {m.name for m in item.iter_markers()}):
            item.add_marker(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides) -> Settings:
        values = {"database_url": f"sqlite:///{tmp_path}/feedback.sqlite3", **overrides}
        return Settings(**values)

    return factory


@pytest.fixture
def live_server(make_settings) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(**settings_overrides)`` starts a server that stops after the test."""
    started: list[LiveServer] = []

    def start(**overrides) -> LiveServer:
        server = LiveServer(make_settings(**overrides)).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture
def server(live_server) -> LiveServer:
    return live_server()


@contextmanager
def service_process(env: dict[str, str], port: int | None = None) -> Iterator[str]:
    """Run ``python -m cds_service`` (gunicorn, as deployed) and yield its base URL."""
    with tempfile.TemporaryDirectory() as logs:
        with serving(
            [sys.executable, "-m", "cds_service"], env=env, port=port, log_path=Path(logs) / "service.log"
        ) as service:
            yield service.url
