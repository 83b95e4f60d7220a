#!/usr/bin/env bash
# Build the container image (needs a Docker engine): deploy/build-image.sh [IMAGE[:TAG]]
# The image's install steps themselves are deploy/build-steps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
image="${1:-hcc-cds:$version}"
docker build --pull -t "$image" -f Dockerfile .
echo "built $image; run: docker run --rm -p 8080:8080 $image" >&2
