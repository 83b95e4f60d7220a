"""The image's install (deploy/build-steps.sh) run natively into a temp prefix, then started as the
image starts it: same build context (.dockerignore applied), same script, same entrypoint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from processes import ROOT, free_port, serving

PREFIX_IN_IMAGE = "/opt/hcc-cds"


def _dockerignore_patterns() -> list[re.Pattern]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", line.strip("/")):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        patterns.append(re.compile(regex + r"\Z"))
    return patterns


def build_context(destination: Path) -> Path:
    """Copy the project as `docker build` would send it: everything but what .dockerignore excludes."""
    patterns = _dockerignore_patterns()

    def excluded(relative: str) -> bool:
        return any(p.match(relative) for p in patterns)

    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if any(excluded("/".join(relative.split("/")[: i + 1])) for i in range(relative.count("/") + 1)):
            continue
        if path.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return destination


def test_build_context_leaves_out_what_the_image_must_not_hold(tmp_path):
    context = build_context(tmp_path / "context")
    names = {p.relative_to(context).as_posix() for p in context.rglob("*")}
    assert "pyproject.toml" in names and "deploy/build-steps.sh" in names and "cds_service/app.py" in names
    assert not any(n.startswith((".git/", ".venv/", "tests/")) or n.endswith((".sqlite3", ".pyc")) for n in names)


def _entrypoint(prefix: Path) -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = json.loads(re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)[-1])
    return [command[0].replace(PREFIX_IN_IMAGE, str(prefix)), *command[1:]]


@pytest.mark.timeout(1200)
def test_build_steps_install_serves_discovery_and_health(tmp_path, postgres_url):
    context = build_context(tmp_path / "context")
    prefix = tmp_path / "opt" / "hcc-cds"
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(context / "deploy" / "build-steps.sh"), str(context), str(prefix)],
        capture_output=True,
        text=True,
    )
    build_seconds = time.monotonic() - started
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    size_mb = sum(f.stat().st_size for f in prefix.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20

    # The bundled model artifacts and terminology file are in the installed package.
    site = next(prefix.glob("lib/python3*/site-packages"))
    for data in [*ROOT.glob("models/artifacts/*.json"), ROOT / "fhir_mappers" / "terminology.yaml"]:
        assert (site / data.relative_to(ROOT)).is_file(), f"{data.relative_to(ROOT)} not installed"
    # Serving only: the training stack stays out of the image, and training names the extra it needs.
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert not installed & {"scikit_learn", "lifelines", "pandas", "scipy", "matplotlib"}, installed
    train = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "models", "train", "--out", str(tmp_path / "model")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert train.returncode == 2 and "hcc-sorafenib-cds[train]" in train.stderr, train.stderr[-2000:]

    workdir = tmp_path / "var-lib"
    workdir.mkdir()
    env = {
        "CDS_DATABASE_URL": postgres_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "CDS_WORKERS": "2",
        "CDS_THREADS": "4",
    }
    port = free_port()
    with serving(
        _entrypoint(prefix),
        env=env,
        cwd=workdir,
        log_path=tmp_path / "service.log",
        port=port,
        drop_env=("PYTHONPATH",),
    ) as service:
        discovery = requests.get(f"{service.url}/cds-services", timeout=5)
        assert discovery.status_code == 200
        assert {s["id"] for s in discovery.json()["services"]} == {
            "hcc-systemic-therapy-select",
            "hcc-systemic-therapy-sign",
        }
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{service.url}/readyz", timeout=5).json()["checks"]["database"] is True
        assert "cds_http_requests_total" in requests.get(f"{service.url}/metrics", timeout=5).text
        healthcheck = subprocess.run(
            [str(prefix / "bin" / "hcc-cds"), "healthcheck"], env={"PORT": str(port), "HOST": "0.0.0.0"}
        )
        assert healthcheck.returncode == 0
        # Imported from the prefix, never from the source tree.
        assert str(ROOT) not in service.output()

    figures = {"build_steps_seconds": round(build_seconds, 1), "install_size_mb": round(size_mb, 1)}
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "deploy-build.json").write_text(json.dumps(figures, indent=2))
    print(f"build-steps: {figures}")
