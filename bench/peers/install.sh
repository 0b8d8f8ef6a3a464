#!/usr/bin/env bash
# bench/peers/install.sh - installs the peers bench/run.sh compares resil with:
#   tenacity   Debian's python3-tenacity (apt-get, as root; otherwise the
#              apt-get line is printed and that peer is skipped)
#   cockatiel  the npm package, pinned in bench/peers/package.json, installed
#              into bench/peers/node_modules
# A peer that cannot be installed is reported and skipped: this script never
# fails the benchmark run.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3

# ---- tenacity (Python) -----------------------------------------------------------
if [ -x "$PY" ] && "$PY" -c 'import tenacity' 2>/dev/null; then
  echo "peers: tenacity $("$PY" -c 'import importlib.metadata as m; print(m.version("tenacity"))' 2>/dev/null || echo '?') already installed"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "peers: installing python3-tenacity with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y -q --no-install-recommends python3-tenacity ||
         { apt-get update -q && apt-get install -y -q --no-install-recommends python3-tenacity; }; } >&2; then
    echo "peers: apt-get failed; the tenacity peer will be skipped"
  fi
else
  echo "peers: tenacity missing; install it with:"
  echo "  sudo apt-get install -y python3-tenacity"
  echo "peers: the tenacity peer will be skipped"
fi

# ---- cockatiel (Node) ---------------------------------------------------------------
want="$(sed -n 's/.*"cockatiel": *"\([^"]*\)".*/\1/p' "$here/package.json")"
have="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$here/node_modules/cockatiel/package.json" 2>/dev/null | head -1)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "peers: node/npm missing (Debian: apt-get install -y nodejs npm); the cockatiel peer will be skipped"
elif [ -n "$have" ] && [ "$have" = "$want" ]; then
  echo "peers: cockatiel $have already installed"
else
  echo "peers: installing cockatiel $want with npm"
  if ! npm install --no-audit --no-fund --prefix "$here" >&2; then
    echo "peers: npm install failed; the cockatiel peer will be skipped"
  fi
fi
exit 0
