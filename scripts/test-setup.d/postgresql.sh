#!/usr/bin/env bash
# PostgreSQL server binaries for the store tests (tests/postgres.py starts a throwaway cluster).
# Idempotent: returns at once when initdb is already there. Never starts or configures a service.
set -uo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: PostgreSQL is not installed and cannot be installed here (needs root and apt-get);" \
       "the PostgreSQL store tests will be SKIPPED." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; then
  echo "WARNING: apt-get could not install postgresql; the PostgreSQL store tests will be SKIPPED." >&2
fi
exit 0
