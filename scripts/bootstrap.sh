#!/usr/bin/env bash
# Create .venv and install the project into it (with extras given as $1, e.g. "test").
# Dependencies come from the hash-pinned locks (pip and setuptools from requirements-build.lock,
# then requirements.lock, or requirements-test.lock with "test"; deploy/lock.sh regenerates them),
# then the project itself without dependencies.
# Re-runs are cheap: the install is skipped while pyproject.toml and the lock are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
lock="requirements${extras:+-$extras}.lock"
stamp=".venv/.installed-$(cat pyproject.toml requirements-build.lock "$lock" | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-build.lock
  .venv/bin/python -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r "$lock"
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  .venv/bin/python -m pip check \
    || { echo "$lock does not satisfy pyproject.toml: run deploy/lock.sh" >&2; exit 1; }
  touch "$stamp"
fi
