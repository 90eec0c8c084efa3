#!/usr/bin/env bash
# make image: builds deploy/Dockerfile with podman, offline (--isolation=chroot: no daemon,
# no registry), FROM the debootstrap'ed base (tools/image/base.sh). The image is
# localhost/alignd:$version and localhost/alignd:latest.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${ALIGND_BASE_IMAGE:-localhost/debian:bookworm-slim}
tools/image/base.sh
version=$(cat VERSION)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
start=$(date +%s)
# Docker format: OCI images have no HEALTHCHECK, STOPSIGNAL is kept either way.
# The host's CA bundle goes to npm in the build stage (deploy/Dockerfile), never into a layer.
ca=${ALIGND_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
podman build --isolation=chroot --format docker -f deploy/Dockerfile --build-arg BASE="$base" \
  --secret id=ca-certificates,src="$ca" \
  --build-arg REVISION="$revision" --build-arg VERSION="$version" -t "localhost/alignd:$version" -t localhost/alignd:latest .
size=$(podman image inspect --format '{{.Size}}' localhost/alignd:latest)
echo "image: localhost/alignd:$version ($revision), $((size / 1000000)) MB, built in $(( $(date +%s) - start )) s"
