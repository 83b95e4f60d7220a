#!/usr/bin/env bash
# One command for a demo anyone can open: a demo EHR, a FHIR server with synthetic patients, SMART
# sign-in and the service, all on 127.0.0.1 (docs/sandbox.md). Installs what it needs first (the
# project, the Node FHIR server's packages; skipped when already there), then needs no internet.
# Prints the demo EHR's URL; Ctrl-C stops everything it started. Arguments go to python -m cds_sandbox
# (--port N: the demo EHR's port, default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/test-setup.d/node-fhir.sh
exec .venv/bin/python -m cds_sandbox "$@"
