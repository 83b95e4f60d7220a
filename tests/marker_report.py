"""A pytest plugin for tests/test_markers.py: after collection, prints each test's id and the
names of its markers, tab-separated (``-p marker_report``)."""

from __future__ import annotations

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        print(f"MARKERS\t{item.nodeid}\t{','.join(sorted({m.name for m in item.iter_markers()}))}")
