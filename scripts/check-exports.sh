#!/usr/bin/env bash
# scripts/check-exports.sh LIB.so - fails unless every dynamic symbol the
# shared library defines is public API: resil_ followed by a lower-case
# letter or digit (internal resil__ names and anything else must stay hidden),
# or resil__private_* (what the inline fast paths read; version RESIL_PRIVATE_1).
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort)
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -Ev '^resil_[a-z0-9]|^resil__private_|^RESIL_[A-Z0-9_]+$' || true)
if [ -n "$bad" ]; then
  echo "unexpected exported symbols in $lib:"; printf '  %s\n' $bad; exit 1
fi
for must in resil_version resil_strerror resil_retry resil_backoff_delay resil_cancel_new resil_proc_run; do
  grep -qx "$must" <<<"$syms" || { echo "missing export $must"; exit 1; }
done
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
case "$soname" in
  libresil.so.[0-9]*) ;;
  *) echo "bad or missing SONAME: '$soname'"; exit 1 ;;
esac
echo "exports ok: $(printf '%s\n' "$syms" | wc -l) symbols, SONAME $soname"
