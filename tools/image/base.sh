#!/usr/bin/env bash
# The Debian 12 base image the Dockerfile builds FROM when no registry is reachable:
# debootstrap --variant=minbase bookworm, imported into podman as
# localhost/debian:bookworm-slim. The root file system's tarball is cached outside the
# repository ($ALIGND_IMAGE_CACHE, default ~/.cache/alignd/images), so this runs once
# (~3 minutes) per machine; the import is skipped when podman already has the image.
set -euo pipefail
image=${ALIGND_BASE_IMAGE:-localhost/debian:bookworm-slim}
cache=${ALIGND_IMAGE_CACHE:-$HOME/.cache/alignd/images}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$image"; then exit 0; fi
mkdir -p "$cache"
tarball="$cache/bookworm-minbase.tar"
if [[ ! -s "$tarball" ]]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "image: debootstrap --variant=minbase bookworm (once, ~3 minutes; cached in $cache)" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
  # What a slim image leaves out (as Debian's own -slim images): downloaded packages,
  # package lists, docs, man pages and translations, now and for every later install.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/usr/share/locale/* "$root"/var/log/*.log
  cat > "$root"/etc/dpkg/dpkg.cfg.d/90-slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    > "$root"/etc/apt/apt.conf.d/90-slim
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
podman import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "image: $image imported from $tarball" >&2
