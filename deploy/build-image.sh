#!/usr/bin/env bash
# Build the container image: deploy/build-image.sh [IMAGE[:TAG]]
#   ENGINE=podman      build with podman instead of Docker (same Dockerfile; docker format keeps HEALTHCHECK)
#   BASE_IMAGE=NAME    another Debian 12 + python3 base (default: the Dockerfile's python:3.11.11-slim-bookworm;
#                      without a registry: deploy/build-debian-base.sh, then BASE_IMAGE=localhost/hcc-cds-base:bookworm)
# The image's install steps themselves are deploy/build-steps.sh (dependencies from requirements.lock).
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
image="${1:-hcc-cds:$version}"
engine="${ENGINE:-docker}"
args=(build -t "$image" -f Dockerfile)
if [ -n "${BASE_IMAGE:-}" ]; then  # a local base: nothing to pull
  args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  [ "$engine" = podman ] && args+=(--pull=never)
else
  args+=(--pull)
fi
if [ "$engine" = podman ]; then
  args+=(--format docker)
fi
"$engine" "${args[@]}" .
echo "built $image; run: $engine run --rm --read-only --tmpfs /tmp -p 8080:8080 $image" >&2
echo "its SBOM: $engine run --rm --entrypoint cat $image /opt/hcc-cds/sbom.cdx.json" >&2
