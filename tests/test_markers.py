"""The markers conftest.py applies, so the fast loop of tests/README.md leaves out exactly what
needs an outside service: collected for real, in a pytest of its own (plugin marker_report.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = {"e2e", "postgres", "browser", "container"}  # the fast loop: -m "not e2e and not postgres and ..."
# A directory of each kind: by directory (e2e, container), by fixture (the e2e stack outside
# tests/e2e, postgres, browser) and by the PostgreSQL half of a parametrised fixture (store, CLI).
PATHS = [
    "tests/e2e",
    "tests/container",
    "tests/monitor/test_monitor_e2e.py",
    "tests/store/test_audit_report.py",
    "tests/deploy/test_cli.py",
]


@pytest.fixture(scope="module")
def markers() -> dict[str, set[str]]:
    """Test id -> its markers' names."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, ["tests", os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "marker_report", "--collect-only"]
        + PATHS,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("MARKERS\t")]
    return {test_id: set(filter(None, names.split(","))) for _, test_id, names in rows}


def test_the_fast_loop_leaves_out_every_test_that_needs_an_outside_service(markers):
    fast = [test_id for test_id, names in markers.items() if not names & OUTSIDE]
    assert fast, "the fast loop collected nothing from these paths"
    assert not [i for i in fast if i.startswith(("tests/e2e/", "tests/container/")) or "postgresql" in i]
    assert [i for i in fast if "[sqlite" in i], "the SQLite half of the parametrised tests belongs in the fast loop"


def test_each_test_gets_the_marker_of_what_it_needs(markers):
    assert all("e2e" in names for i, names in markers.items() if i.startswith("tests/e2e/"))
    assert all("container" in names for i, names in markers.items() if i.startswith("tests/container/"))
    assert all("postgres" in names for i, names in markers.items() if "[postgresql" in i)
    browser = [i for i, names in markers.items() if "browser" in names]
    assert all(i.startswith("tests/e2e/") for i in browser), browser
    assert any(i.startswith("tests/e2e/test_smart_app.py") for i in browser), browser
    # by fixture outside their directories: the e2e stack, the session's PostgreSQL
    assert any("e2e" in names for i, names in markers.items() if i.startswith("tests/monitor/"))
    assert any("e2e" not in names for i, names in markers.items() if i.startswith("tests/monitor/"))
    assert any("postgres" in names for i, names in markers.items() if i.startswith("tests/container/"))
