"""docs/integration.md §1 shows hospital IT the commands tests/container runs (no podman needed here)."""

from __future__ import annotations

from podman_kit import BASE_IMAGE, BUILD_COMMAND, NETWORK, run_command
from processes import ROOT

DOC = (ROOT / "docs" / "integration.md").read_text()
SECTION = DOC[DOC.index("### Running the image and the manifests") : DOC.index("## 2. ")]
ONE_LINE = " ".join(SECTION.replace("\\\n", " ").split())


def test_build_command_is_documented():
    sandbox_only = {"--isolation", "chroot", "-v"}
    flags = [a for a in BUILD_COMMAND[2:] if a not in sandbox_only and not a.startswith(("/", "localhost/hcc-cds:"))]
    documented = " ".join(flags).replace("-t -f Dockerfile .", "-t hcc-cds:0.1.0 -f Dockerfile .")
    assert f"podman build {documented}" in ONE_LINE
    for mount in (
        "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        "tests/container/pip.conf:/etc/pip.conf:ro",
    ):
        assert mount in ONE_LINE
    assert f"deploy/build-debian-base.sh {BASE_IMAGE}" in ONE_LINE


def test_run_command_is_documented():
    command = run_command("hcc-cds:0.1.0", "hcc-cds", 8080, {})
    hardening = command[command.index("--read-only") : command.index("--network")]
    assert "podman run --detach --name hcc-cds " + " ".join(hardening) in ONE_LINE
    assert "--publish 127.0.0.1:8080:8080" in ONE_LINE and f"--network {NETWORK}" in ONE_LINE


def test_kube_play_command_is_documented():
    assert f"podman kube play --network {NETWORK}" in ONE_LINE
    assert "podman secret create hcc-cds-secrets" in ONE_LINE
