"""The hash-pinned lock files: generated from pyproject.toml by deploy/lock.sh (uv pip compile
--generate-hashes), up to date with it, and the only way the image, bootstrap and CI install."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

from lock_digest import dependencies_digest  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = {
    "build": ROOT / "requirements-build.lock",
    "runtime": ROOT / "requirements.lock",
    "test": ROOT / "requirements-test.lock",
}
OUT_OF_DATE = "out of date with pyproject.toml: run deploy/lock.sh and commit the lock files"


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of the pins that apply on this Python (markers evaluated)."""
    text = re.sub(r"\\\n\s*", " ", lock.read_text())
    found = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{lock.name}: {line[:80]} is not pinned with =="
        found[canonicalize_name(requirement.name)] = (pin.version, [o.strip() for o in options])
    return found


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_lock_was_generated_from_this_pyproject(kind):
    header = LOCKS[kind].read_text().splitlines()[:5]
    recorded = next(
        (line.split(":", 1)[1].strip() for line in header if line.startswith("# pyproject-dependencies-sha256:")), None
    )
    assert recorded == dependencies_digest(), f"{LOCKS[kind].name} is {OUT_OF_DATE}"


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_every_pin_carries_hashes(kind):
    locked = pins(LOCKS[kind])
    assert locked
    unhashed = [
        name for name, (_, hashes) in locked.items() if not hashes or not all(h.startswith("sha256:") for h in hashes)
    ]
    assert not unhashed, f"{LOCKS[kind].name}: pins without sha256 hashes: {unhashed}"


def _requirements(kind: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    wanted = ["pip", *PYPROJECT["build-system"]["requires"]] if kind == "build" else project["dependencies"]
    if kind == "test":  # the tests train and report too
        wanted = [*wanted, *project["optional-dependencies"]["train"], *project["optional-dependencies"]["test"]]
    environment = default_environment()
    return [r for r in map(Requirement, wanted) if r.marker is None or r.marker.evaluate(environment)]


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_every_requirement_of_pyproject_is_pinned_within_its_range(kind):
    locked = pins(LOCKS[kind])
    for requirement in _requirements(kind):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is missing from {LOCKS[kind].name}: {OUT_OF_DATE}"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCKS[kind].name} pins {name}=={version}, outside {requirement}: {OUT_OF_DATE}"
        )


def test_tests_run_on_the_versions_the_image_ships():
    runtime, test = pins(LOCKS["runtime"]), pins(LOCKS["test"])
    differing = {n: (v, test[n][0]) for n, (v, _) in runtime.items() if n in test and test[n][0] != v}
    assert not differing, f"requirements-test.lock moved pins of requirements.lock: {differing}"
    assert runtime.keys() <= test.keys()
    # The image serves from the stored artifact: the training stack stays out of it.
    assert not {"scikit-learn", "lifelines", "pandas", "scipy", "matplotlib"} & runtime.keys()
    # The installers are locked once, in requirements-build.lock.
    assert not {"pip", "setuptools"} & (runtime.keys() | test.keys())


def test_image_bootstrap_and_ci_install_from_the_locks():
    build_steps = (ROOT / "deploy" / "build-steps.sh").read_text()
    for lock in ("requirements-build.lock", "requirements.lock", "sbom-tool.lock"):
        assert re.search(rf"--require-hashes[^\n]*{re.escape(lock)}", build_steps), lock
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"--require-hashes[^\n]*requirements-build\.lock", bootstrap)
    assert "--require-hashes" in bootstrap and 'lock="requirements${extras:+-$extras}.lock"' in bootstrap
    # The project itself goes in without resolving anything more.
    assert "--no-deps --no-build-isolation" in build_steps and "--no-deps --no-build-isolation" in bootstrap
    assert "bash scripts/bootstrap.sh test" in (ROOT / "scripts" / "test.sh").read_text()
