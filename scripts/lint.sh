#!/usr/bin/env bash
# Static checks, the same in CI (.ci/run) and before a commit (.pre-commit-config.yaml): ruff's lint
# and format check, mypy (configuration in pyproject.toml) and the import-layer contracts. Every
# check runs even when an earlier one fails, so one run shows everything to fix.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test || exit 1
failed=()
run() {
  echo "== lint: $*" >&2
  "$@" || failed+=("$*")
}
run .venv/bin/ruff check .
run .venv/bin/ruff format --check .
run .venv/bin/mypy
run .venv/bin/lint-imports
if [ ${#failed[@]} -gt 0 ]; then
  echo "lint failed: ${failed[*]}" >&2
  exit 1
fi
