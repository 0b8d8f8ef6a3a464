#!/usr/bin/env bash
# scripts/check-exports.sh LIB.so - the export policy of docs/abi.md:
#  - every dynamic symbol the shared library defines is either public API,
#    resil_ followed by a lower-case letter or digit, bound at the version
#    RESIL_<n>, or a private name that public inline code reads,
#    resil__private_*, bound at RESIL_PRIVATE_<n>; anything else (resil__
#    internals, toolchain runtimes) stays hidden;
#  - a few must-have exports are there, and the SONAME is libresil.so.<N>;
#  - the map itself (cmake/resil.map) does what the policy says: a probe
#    library linked with it exports its names at those versions, and a
#    program built against RESIL_PRIVATE_1 refuses to load once the private
#    node is bumped (the mismatch fails at load time, never silently).
set -euo pipefail
lib=$1
root=$(cd "$(dirname "$0")/.." && pwd)
map=$root/cmake/resil.map

# name version, for every defined dynamic symbol (not the version nodes).
defined() {
  objdump -T "$1" | awk '$0 !~ /\*UND\*/ && NF >= 6 && $2 ~ /^[gwu]/ {
      name = $NF; ver = $(NF - 1); gsub(/[()]/, "", ver);
      if (name != ver) print name, ver }' | sort
}

check_versions() { # LIB: fails on any symbol outside the policy
  local bad
  bad=$(defined "$1" | awk '
      $1 ~ /^resil__private_/ { if ($2 !~ /^RESIL_PRIVATE_[0-9]+$/) print; next }
      $1 ~ /^resil_[a-z0-9]/  { if ($2 !~ /^RESIL_[0-9]+$/) print; next }
      { print }')
  if [ -n "$bad" ]; then
    echo "exported symbols outside the policy (name version) in $1:"
    printf '%s\n' "$bad" | sed 's/^/  /'
    return 1
  fi
}

syms=$(defined "$lib")
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
check_versions "$lib"
names=$(printf '%s\n' "$syms" | awk '{print $1}')
for must in resil_version resil_strerror resil_retry resil_backoff_delay resil_cancel_new \
            resil_proc_run resil_set_log; do
  printf '%s\n' "$names" | grep -qx "$must" || { echo "missing export $must"; exit 1; }
done
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
case "$soname" in
  libresil.so.[0-9]*) ;;
  *) echo "bad or missing SONAME: '$soname'"; exit 1 ;;
esac
grep -Eq '^RESIL_PRIVATE_[0-9]+ *\{' "$map" || { echo "$map has no RESIL_PRIVATE_<n> node"; exit 1; }

# The map on a probe library: what it exports, and at which versions.
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "exports ok (no $cc: map probe skipped)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/probe.c" <<'C'
#define E __attribute__((visibility("default")))
E int resil_probe(void) { return 1; }
E _Thread_local int resil__private_probe_tls = 2;
E int resil__private_probe_fn(void) { return resil__private_probe_tls; }
E int resil__internal_probe(void) { return 3; }  /* must stay hidden */
E int other_probe(void) { return 4; }            /* must stay hidden */
C
cat >"$tmp/use.c" <<'C'
int resil_probe(void);
int resil__private_probe_fn(void);
extern _Thread_local int resil__private_probe_tls;
int main(void) { return resil_probe() + resil__private_probe_fn() + resil__private_probe_tls == 5 ? 0 : 1; }
C
"$cc" -shared -fPIC -o "$tmp/libprobe.so" "$tmp/probe.c" -Wl,--version-script="$map" -Wl,-soname,libprobe.so
got=$(defined "$tmp/libprobe.so" | tr '\n' ' ')
want="resil__private_probe_fn RESIL_PRIVATE_1 resil__private_probe_tls RESIL_PRIVATE_1 resil_probe RESIL_1 "
want=${want//RESIL_PRIVATE_1/$(grep -Eo '^RESIL_PRIVATE_[0-9]+' "$map")}
want=${want//RESIL_1 /$(grep -Eo '^RESIL_[0-9]+' "$map") }
[ "$got" = "$want" ] || { echo "the map exports '$got', expected '$want'"; exit 1; }
check_versions "$tmp/libprobe.so"
"$cc" -o "$tmp/use" "$tmp/use.c" -L"$tmp" -lprobe -Wl,-rpath,"$tmp"
"$tmp/use" || { echo "a program linked against the probe library failed"; exit 1; }
# Bump the private node: the old program must refuse to load.
sed -E 's/^RESIL_PRIVATE_[0-9]+/RESIL_PRIVATE_999/' "$map" >"$tmp/bumped.map"
"$cc" -shared -fPIC -o "$tmp/libprobe.so" "$tmp/probe.c" -Wl,--version-script="$tmp/bumped.map" \
  -Wl,-soname,libprobe.so
if out=$("$tmp/use" 2>&1); then
  echo "a program built against the old private node still loads after the bump"; exit 1
fi
case "$out" in
  *"RESIL_PRIVATE_"*"not found"*) ;;
  *) echo "unexpected failure after the bump: $out"; exit 1 ;;
esac
n_pub=$(printf '%s\n' "$syms" | grep -c ' RESIL_[0-9]' || true)
n_priv=$(printf '%s\n' "$syms" | grep -c ' RESIL_PRIVATE_' || true)
echo "exports ok: $n_pub public, $n_priv private symbols, SONAME $soname; map probe ok"
