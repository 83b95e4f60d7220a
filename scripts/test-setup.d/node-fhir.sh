#!/usr/bin/env bash
# Node packages, each installed exactly from its package-lock.json with npm ci and skipped while
# node_modules matches the lock file:
#   cds_sandbox/fhir_server  the sandbox's and the e2e tests' FHIR server (Medplum's FHIR router
#                            over its in-memory repository);
#   tests/sandbox            axe-core, injected by the accessibility test (never shipped).
# Needs node 20.19+ and npm (on the machine image).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
command -v npm >/dev/null || { echo "npm not found: install Node.js 20.19+ (node-fhir.sh)" >&2; exit 1; }
for dir in cds_sandbox/fhir_server tests/sandbox; do
  cd "$root/$dir"
  [ -f package-lock.json ] || continue  # tests/sandbox is absent from an installed package
  stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
done
