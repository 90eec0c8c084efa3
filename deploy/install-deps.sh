#!/usr/bin/env bash
# Installs the Debian 12 packages that alignd needs to build, test, benchmark and reproduce.
# Idempotent: when every package is present it only runs dpkg-query and returns in well under a second.
# Usage: deploy/install-deps.sh            (build + test packages)
#        deploy/install-deps.sh --bench    (adds PyTorch, NumPy for the benchmark's reference side)
#        deploy/install-deps.sh --repro    (adds matplotlib and SciPy for the reproduction's plots and tests)
#        deploy/install-deps.sh --sanitize (adds Clang and its libFuzzer runtime, dpkg-dev for
#                                           Debian's Abseil source that the TSan build needs)
#        deploy/install-deps.sh --image    (adds podman and debootstrap: make image, make test-image)
#        deploy/install-deps.sh --build-only (what the image's build stage needs: no test tools)
set -euo pipefail

build=(build-essential cmake ninja-build pkg-config
       libeigen3-dev libabsl-dev zlib1g-dev
       libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
       libcli11-dev nlohmann-json3-dev libdnnl-dev
       libsqlite3-dev libpq-dev libssl-dev prometheus-cpp-dev libcpp-httplib-dev python3
       libboost-dev  # Boost.Math (header only): Student's t and the normal for experiment statistics
       file)  # file and dpkg-dev (build-essential): CPack's dpkg-shlibdeps
command -v npm >/dev/null || build+=(nodejs npm)  # the dashboard's front end (esbuild)
tests=(clang-format libgtest-dev libgmock-dev libbenchmark-dev
       python3-numpy python3-grpcio python3-protobuf python3-pip python3-setuptools
       python3-onnx python3-crcmod  # the exports' readers: ONNX's checker, CRC-32C
       openssl docker-compose yamllint prometheus
       postgresql  # a real PostgreSQL 15 for the storage contract test (--storage postgresql://)
       chromium)  # the dashboard's browser tests (playwright-core drives it)
pkgs=("${build[@]}" "${tests[@]}")
for arg in "$@"; do
  case "$arg" in
    --build-only) pkgs=("${build[@]}") ;;
    --bench) pkgs+=(python3-torch libopenblas0-pthread) ;;  # without OpenBLAS, torch falls back to reference BLAS (~5 GFLOP/s)
    --sanitize) pkgs+=(clang libclang-rt-14-dev dpkg-dev) ;;
    --image) pkgs+=(podman debootstrap uidmap) ;;
    --repro) pkgs+=(python3-matplotlib python3-scipy) ;;
    *) echo "install-deps: unknown option '$arg' (use --bench, --repro, --sanitize, --image or --build-only)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
