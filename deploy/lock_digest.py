"""The digest of everything in pyproject.toml that decides the lock files' contents.

deploy/lock.sh writes it into each lock file's header; tests/deploy/test_lock.py recomputes it, so
a dependency changed in pyproject.toml without re-running deploy/lock.sh fails the tests.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def dependencies_digest(pyproject: Path = PYPROJECT) -> str:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    locked = {
        "build-system.requires": sorted(data["build-system"]["requires"]),
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
    }
    return hashlib.sha256(json.dumps(locked, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    print(dependencies_digest(Path(sys.argv[1]) if len(sys.argv) > 1 else PYPROJECT))
