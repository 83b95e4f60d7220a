#!/usr/bin/env bash
# Debian's Chromium for the end-to-end browser tests (Playwright drives it by executable path;
# Playwright's own browser download cannot work on a closed network and is never used).
# Idempotent: does nothing when /usr/bin/chromium is already there. Runs as root on CI.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
