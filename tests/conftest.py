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
