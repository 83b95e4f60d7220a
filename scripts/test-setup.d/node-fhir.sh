#!/usr/bin/env bash
# Node dependencies of the end-to-end FHIR server (tests/e2e/fhir_server: Medplum's FHIR router
# over its in-memory repository). Installs exactly package-lock.json with npm ci; skipped while
# node_modules matches the lock file. Needs node 20.19+ and npm (on the machine image).
set -euo pipefail
cd "$(dirname "$0")/../../tests/e2e/fhir_server"
command -v npm >/dev/null || { echo "npm not found: install Node.js 20.19+ (node-fhir.sh)" >&2; exit 1; }
stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
