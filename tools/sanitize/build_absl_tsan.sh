#!/usr/bin/env bash
# Builds Debian 12's own Abseil (20220623.1, with Debian's patches: the same ABI, inline
# namespace and options as libabsl-dev) instrumented for ThreadSanitizer, and installs it
# under the cache (default ~/.cache/alignd/absl-tsan; never in the repo). The TSan build
# of alignd links it in place of the system Abseil, so that TSan sees absl::Mutex (an
# uninstrumented Mutex makes every access it guards look like a race). The source comes
# from Debian's archive (apt-get source), like every other dependency. Idempotent: a
# second run returns at once. Prints the install prefix.
set -euo pipefail
cache=${ALIGND_CACHE:-$HOME/.cache/alignd}
prefix="$cache/absl-tsan"
if [[ -f "$prefix/.complete" ]]; then echo "$prefix"; exit 0; fi
work="$cache/absl-tsan-work"
rm -rf "$work" && mkdir -p "$work/lists/partial" "$work/parts"
cat >"$work/parts/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists")
echo "build_absl_tsan: fetching Debian's abseil source" >&2
version=$(dpkg-query -W -f='${Version}' libabsl-dev)
fetched=no
for attempt in 1 2 3; do  # the archive is the network's: retry a transient failure
  if apt-get "${apt_opts[@]}" update -qq >&2 &&
     (cd "$work" && { apt-get "${apt_opts[@]}" source --download-only "abseil=$version" >&2 2>/dev/null ||
                      apt-get "${apt_opts[@]}" source --download-only abseil >&2; }); then
    fetched=yes
    break
  fi
  echo "build_absl_tsan: fetch failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 5))
done
if [[ $fetched != yes ]]; then
  echo "build_absl_tsan: cannot fetch Debian's abseil source from the archive (deb-src)" >&2
  exit 1
fi
(cd "$work" && dpkg-source -x --no-check ./abseil_*.dsc src >&2)
echo "build_absl_tsan: building (a few minutes)" >&2
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_TESTING=OFF -DABSL_ENABLE_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" >&2
cmake --build "$work/build" -j "$(nproc)" >&2
cmake --install "$work/build" >&2
touch "$prefix/.complete"
rm -rf "$work"
echo "$prefix"
