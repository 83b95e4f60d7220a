#!/usr/bin/env bash
# A Debian 12 base image with Python 3.11, built from Debian's own packages, for hosts that cannot
# pull the Dockerfile's default base (python:3.11.11-slim-bookworm) from a registry:
#
#   deploy/build-debian-base.sh [IMAGE] [DEBIAN_MIRROR]
#   podman build --build-arg BASE_IMAGE=IMAGE ...        (docs/integration.md §1)
#
# IMAGE defaults to localhost/hcc-cds-base:bookworm; an existing IMAGE is kept (delete it to
# rebuild). DEBIAN_MIRROR defaults to the first Debian archive in this host's apt sources. Needs
# root, debootstrap and podman (ENGINE=docker for Docker). Takes 1-3 minutes; ~130 MB.
set -euo pipefail
image="${1:-localhost/hcc-cds-base:bookworm}"
engine="${ENGINE:-podman}"
if "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already built" >&2
  exit 0
fi
mirror="${2:-$(grep -hoE '^(URIs:|deb)[[:space:]]+[^[:space:]]*/debian/?([[:space:]]|$)' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | awk '{print $2; exit}' || true)}"
[ -n "$mirror" ] || { echo "no Debian mirror in the apt sources: pass one as the second argument" >&2; exit 1; }

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >&2
# What a container never uses: package lists and caches, documentation, translations, logs.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
tar --numeric-owner -C "$rootfs" -c . | "$engine" import --change 'CMD ["/bin/bash"]' - "$image" >&2
echo "built base image $image from $mirror" >&2
