#!/usr/bin/env bash
# bench/peers/install.sh - installs the peers bench/run.sh compares resil with:
#   tenacity, atomicwrites, filelock, prometheus_client
#              Debian's python3-tenacity, python3-atomicwrites,
#              python3-filelock and python3-prometheus-client (apt-get, as
#              root; otherwise the apt-get line is printed and those peers are
#              skipped)
#   cockatiel, opossum, write-file-atomic, proper-lockfile, prom-client
#              the npm packages, pinned in bench/peers/package.json, installed
#              into bench/peers/node_modules (opossum 9.0.0: 10.x needs Node >= 22;
#              prom-client 15.1.3 declares node ^16 || ^18 || >=20)
# A peer that cannot be installed is reported and skipped: this script never
# fails the benchmark run.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3

# ---- Python peers (Debian packages) -------------------------------------------------
# module name : Debian package
py_peers=("tenacity:python3-tenacity" "atomicwrites:python3-atomicwrites" "filelock:python3-filelock"
  "prometheus_client:python3-prometheus-client")
missing=()
for entry in "${py_peers[@]}"; do
  mod="${entry%%:*}" pkg="${entry#*:}"
  if [ -x "$PY" ] && "$PY" -c "import $mod" 2>/dev/null; then
    echo "peers: $mod $("$PY" -c "import importlib.metadata as m; print(m.version('$mod'))" 2>/dev/null || echo '?') already installed"
  else
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "peers: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get install -y -q --no-install-recommends "${missing[@]}" ||
           { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2; then
      echo "peers: apt-get failed; the peers of ${missing[*]} will be skipped"
    fi
  else
    echo "peers: ${missing[*]} missing; install them with:"
    echo "  sudo apt-get install -y ${missing[*]}"
    echo "peers: those peers will be skipped"
  fi
fi

# ---- Node peers (npm) -------------------------------------------------------------------
npm_peers=(cockatiel opossum write-file-atomic proper-lockfile prom-client)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "peers: node/npm missing (Debian: apt-get install -y nodejs npm); the ${npm_peers[*]} peers will be skipped"
  exit 0
fi
stale=()
for p in "${npm_peers[@]}"; do
  want="$(sed -n "s/.*\"$p\": *\"\([^\"]*\)\".*/\1/p" "$here/package.json")"
  have="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$here/node_modules/$p/package.json" 2>/dev/null | head -1)"
  if [ -n "$have" ] && [ "$have" = "$want" ]; then
    echo "peers: $p $have already installed"
  else
    stale+=("$p@$want")
  fi
done
if [ "${#stale[@]}" -gt 0 ]; then
  echo "peers: installing ${stale[*]} with npm"
  if ! npm install --no-audit --no-fund --prefix "$here" >&2; then
    echo "peers: npm install failed; the ${stale[*]} peers will be skipped"
  fi
fi
exit 0
