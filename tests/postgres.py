"""A throwaway PostgreSQL cluster for the test session (initdb into a temp dir, loopback port).

``scripts/test-setup.d/postgresql.sh`` installs the server binaries; this module never installs
anything. initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user
that Debian's package creates (or to a ``cdstest`` user made here when it is absent).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest
from processes import free_port
from sqlalchemy import create_engine, text

SUPERUSER = "cds"


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _os_user() -> str | None:
    """The user that owns the cluster: None = ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "cdstest"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "cdstest"], check=True)
    return "cdstest"


class PostgresCluster:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.user = _os_user()
        self.root = Path(tempfile.mkdtemp(prefix="cds-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.version = ""
        self._databases = count(1)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        init = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")
        if started.returncode:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr[-1000:]} {log[-2000:]}")
        with create_engine(self.url("postgres")).connect() as connection:
            self.version = connection.execute(text("SHOW server_version")).scalar_one()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        name = f"test_{next(self._databases)}"
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


def unreachable_database():
    """An engine for a PostgreSQL that is not there (nothing listens on port 1): every call to it
    fails within a second, as during a database outage."""
    return create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = _bindir()
    if bindir is None:
        reason = (
            "POSTGRESQL NOT INSTALLED: the PostgreSQL store tests are SKIPPED. "
            "Run scripts/test-setup.d/postgresql.sh (apt-get install postgresql) to run them."
        )
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(request) -> Callable[[], str]:
    """Factory of fresh, empty PostgreSQL databases (starts the session cluster on first use)."""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database
