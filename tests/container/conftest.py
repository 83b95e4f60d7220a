"""The image and the Kubernetes manifests, run for real with podman (pytest -m container).

The base image is built once per machine from Debian's packages (deploy/build-debian-base.sh) and
kept in podman's storage; the image is rebuilt by `podman build` (podman_kit.BUILD_COMMAND), whose
layer cache makes an unchanged build context cheap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator

import pytest
from podman_kit import BASE_IMAGE, BUILD_COMMAND, IMAGE, PODMAN_ENV, podman, record
from postgres import postgres_cluster  # noqa: F401  (the session's PostgreSQL, shared with the pods)
from processes import ROOT


def _engine_missing() -> str | None:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        return "podman/runc are not installed (scripts/test-setup.d/podman.sh installs them)"
    if os.geteuid() != 0:
        return "the container tests run rootful podman and debootstrap: run them as root"
    return None


@pytest.fixture(scope="session")
def image() -> str:
    """The project's image, built from the Dockerfile on the locally built Debian base."""
    missing = _engine_missing()
    if missing:
        reason = f"CONTAINER TESTS SKIPPED: {missing}"
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    started = time.monotonic()
    base = subprocess.run(
        ["bash", "deploy/build-debian-base.sh", BASE_IMAGE], cwd=ROOT, env=PODMAN_ENV,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert base.returncode == 0, base.stderr[-3000:]
    record("base_image_seconds", time.monotonic() - started)
    started = time.monotonic()
    build = subprocess.run(BUILD_COMMAND, cwd=ROOT, env=PODMAN_ENV, capture_output=True, text=True, timeout=1500)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-3000:]
    record("image_build_seconds", time.monotonic() - started)
    return IMAGE


@pytest.fixture
def cleanup_containers() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "--force", "--time", "0", name, check=False)
