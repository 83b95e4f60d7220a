#!/usr/bin/env bash
# Quick start: install and run the service on embedded defaults (bundled model, SQLite, no JWT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m cds_service "$@"
