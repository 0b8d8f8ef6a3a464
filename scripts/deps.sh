#!/usr/bin/env bash
# scripts/deps.sh [extra packages...] - makes sure the Debian packages resil
# needs are installed.  As root it installs what is missing (apt-get update
# first); otherwise it prints the exact apt-get line and fails.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libjansson-dev libyaml-dev libcmocka-dev libmicrohttpd-dev
      prometheus "$@") # prometheus: promtool and a real server for the metrics tests

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  echo "deps: missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
