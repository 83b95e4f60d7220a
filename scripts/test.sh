#!/usr/bin/env bash
# Quick start: install everything the tests need and run the whole suite (what CI runs).
# Each scripts/test-setup.d/*.sh installs one external thing the tests use (PostgreSQL, a browser…);
# they must be idempotent and may export nothing: tests find what they need by path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
for step in scripts/test-setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== test set-up: $step" >&2
  bash "$step"
done
exec .venv/bin/python -m pytest "$@"
