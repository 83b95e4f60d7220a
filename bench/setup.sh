#!/usr/bin/env bash
# Benchmark set-up (on demand, not CI): wrk and hyperfine from Debian, profilers and schemathesis
# from PyPI into the project's venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null || ! command -v hyperfine >/dev/null; then
  apt-get install -y --no-install-recommends wrk hyperfine >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk hyperfine >/dev/null; }
fi
.venv/bin/python -m pip install --quiet "py-spy>=0.4" "pyinstrument>=5" "schemathesis>=4"
echo "wrk: $(wrk --version 2>&1 | head -1)"
echo "hyperfine: $(hyperfine --version)"
