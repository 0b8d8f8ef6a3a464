#!/usr/bin/env bash
# scripts/check-link-deps.sh BUILD_DIR - what every program using resil
# loads: libresil.so and the resil command need only libc, libm, pthread,
# jansson and libyaml (plus sanitizer runtimes in sanitizer builds); only
# libresil-http.so and resil-metrics-serve link libmicrohttpd.
set -euo pipefail
build=$(cd "$1" && pwd)
allowed='^(libc|libm|libpthread|libjansson|libyaml-0|ld-linux[-a-z0-9_]*|libdl|librt|libgcc_s|libasan|libubsan|libtsan|libclang_rt[-.a-z0-9_]*)\.so'
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
fail=0
for f in libresil.so resil; do
  [ -e "$build/$f" ] || { echo "missing $build/$f"; exit 1; }
  bad=$(needed "$build/$f" | grep -Ev "$allowed" || true)
  if [ -n "$bad" ]; then
    echo "$f links more than the core needs:" $bad; fail=1
  fi
  # what the dynamic loader really maps, transitively
  if ldd "$build/$f" | grep -Eq 'microhttpd|gnutls|nettle|gmp|p11-kit'; then
    echo "$f loads libmicrohttpd or its TLS stack:"; ldd "$build/$f"; fail=1
  fi
done
needed "$build/libresil-http.so" | grep -q '^libmicrohttpd' ||
  { echo "libresil-http.so does not link libmicrohttpd"; fail=1; }
needed "$build/libresil-http.so" | grep -q '^libresil\.so' ||
  { echo "libresil-http.so does not link libresil.so"; fail=1; }
[ -x "$build/resil-metrics-serve" ] || { echo "missing $build/resil-metrics-serve"; fail=1; }
syms=$(nm -D --defined-only "$build/libresil-http.so" | awk '{print $3}')
bad=$(printf '%s\n' "$syms" | grep -Ev '^resil_metrics_server_' || true)
[ -z "$bad" ] || { echo "libresil-http.so exports more than the server's API:" $bad; fail=1; }
nm -D --defined-only "$build/libresil.so" | grep -q ' resil_metrics_server_' &&
  { echo "libresil.so still defines the HTTP server"; fail=1; }
[ $fail -eq 0 ] || exit 1
echo "link deps ok: libresil.so and resil: $(needed "$build/resil" | tr '\n' ' ')"
