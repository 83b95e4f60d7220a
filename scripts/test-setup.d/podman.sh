#!/usr/bin/env bash
# A container engine for tests/container (pytest -m container): Debian's podman, run by runc, with
# slirp4netns for pod networks, catatonit for pods' infra containers, and debootstrap to build the
# base image locally (no registry is reachable here).
# Idempotent: does nothing when all five are installed. Needs root and apt-get; without them the
# container tests are SKIPPED with a warning.
set -uo pipefail
if command -v podman >/dev/null && command -v runc >/dev/null && command -v slirp4netns >/dev/null \
  && command -v catatonit >/dev/null && command -v debootstrap >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "WARNING: podman is not installed and cannot be installed here (needs root and apt-get);" \
       "the container tests will be SKIPPED." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq \
  && apt-get install -y -qq --no-install-recommends podman runc slirp4netns catatonit debootstrap >/dev/null; }; then
  echo "WARNING: apt-get could not install podman; the container tests will be SKIPPED." >&2
fi
exit 0
