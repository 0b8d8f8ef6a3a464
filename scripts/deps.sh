#!/usr/bin/env bash
# scripts/deps.sh [build|test|bench] [extra packages...] - makes sure the
# Debian packages resil needs are installed.  As root it installs what is
# missing (apt-get update first); otherwise it prints the exact apt-get line
# and fails.
#
#   build  what `make`, `make demo` and `make install` need: a C compiler,
#          CMake, pkg-config, jansson, libyaml, and libmicrohttpd for
#          libresil-http (the /metrics endpoint)
#   test   build, plus what `make test` needs: cmocka (the unit tests),
#          prometheus (promtool and a real server for the metrics tests) and
#          python3 (the layer check)
#   bench  build, plus hyperfine and Debian's retry(1) (bench/bench_startup.sh)
# Without a group (the first argument is a package name, or none is given)
# the test set is checked.
set -euo pipefail

build=(build-essential cmake pkg-config libjansson-dev libyaml-dev libmicrohttpd-dev)
group=test
case "${1:-}" in
  build | test | bench)
    group=$1
    shift
    ;;
esac
case "$group" in
  build) pkgs=("${build[@]}") ;;
  test) pkgs=("${build[@]}" libcmocka-dev prometheus python3) ;;
  bench) pkgs=("${build[@]}" hyperfine retry) ;;
esac
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "deps ($group): installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  echo "deps ($group): missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
