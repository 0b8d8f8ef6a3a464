#!/usr/bin/env bash
# scripts/check-install.sh BUILD_DIR - installs the build into a DESTDIR, then
# builds a small program against it through pkg-config, linked both to the
# shared and to the static library, and runs it.  Checks the layout
# (headers, libresil.so with its soname link, libresil.a, resil.pc, the CLI),
# libresil-http through resil-http.pc, the CLI's helper in libexec/resil (the
# installed `resil metrics serve` finds it) and the guides in share/doc/resil.
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/opt/resil-test
DESTDIR="$tmp/root" cmake --install "$build" --prefix "$prefix" >/dev/null
pcfile=$(ls "$tmp/root$prefix"/lib*/pkgconfig/resil.pc)
grep -q '^Version: ' "$pcfile" || { echo "resil.pc has no Version"; exit 1; }
root="$tmp/root$prefix"
libdir=$(cd "$root" && ls -d lib* | head -n1)
for f in include/resil/resil.h include/resil/retry.h "$libdir/libresil.a" "$libdir/libresil.so" \
         "$libdir/pkgconfig/resil.pc" bin/resil include/resil/metrics_http.h \
         "$libdir/libresil-http.a" "$libdir/libresil-http.so" "$libdir/pkgconfig/resil-http.pc" \
         libexec/resil/resil-metrics-serve share/doc/resil/metrics.md share/doc/resil/README.md; do
  [ -e "$root/$f" ] || { echo "missing after install: $f"; exit 1; }
done
ls "$root/$libdir"/libresil.so.0* >/dev/null || { echo "missing soname link libresil.so.0"; exit 1; }

san=$(sed -n 's/^RESIL_SANITIZE:STRING=//p' "$build/CMakeCache.txt")
cflags=()
[ -n "$san" ] && cflags=(-fsanitize="$san")
grep -q '^RESIL_COVERAGE:BOOL=ON' "$build/CMakeCache.txt" && cflags+=(--coverage)
cat > "$tmp/prog.c" <<'C'
#include <resil/resil.h>
#include <stdio.h>
#include <string.h>
static resil_outcome op(resil_retry_call *c, void *arg) { (void)arg; return c->attempt < 2 ? RESIL_OUTCOME_TRANSIENT : RESIL_OUTCOME_SUCCESS; }
int main(void) {
    resil_fake_clock fc;
    resil_retry_opts o = RESIL_RETRY_OPTS_INIT;
    o.clock = resil_fake_clock_init(&fc, 0, 0);
    resil_retry_result r;
    resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
    int rc = resil_retry(op, NULL, "install-check", &cfg, &o, &r);
    if (rc != 0 || r.attempts != 2 || strcmp(resil_version(), RESIL_VERSION_STRING) != 0) return 1;
    printf("ok %s\n", resil_version());
    return 0;
}
C
# The .pc names the configured prefix; point it at the staged tree instead.
export PKG_CONFIG_PATH="$root/$libdir/pkgconfig"
pc() { pkg-config --define-variable=prefix="$root" "$@" resil; }
pc_cflags=$(pc --cflags)
pc_libs=$(pc --libs)
pc_static=$(pc --static --libs)
cc -std=c11 -Wall -Wextra -Werror "${cflags[@]}" $pc_cflags "$tmp/prog.c" -o "$tmp/prog-shared" $pc_libs
LD_LIBRARY_PATH="$root/$libdir" "$tmp/prog-shared"
cc -std=c11 -Wall -Wextra -Werror "${cflags[@]}" $pc_cflags "$tmp/prog.c" -o "$tmp/prog-static" \
   "$root/$libdir/libresil.a" $(printf '%s\n' $pc_static | grep -v -- '-lresil')
"$tmp/prog-static"
"$root/bin/resil" --version | grep -q 'resil 0.1.0' || { echo "installed CLI --version wrong"; exit 1; }

# libresil-http through its own pkg-config name: a server on a free port.
cat > "$tmp/http.c" <<'C'
#include <resil/metrics_http.h>
#include <stdio.h>
int main(void) {
    resil_metrics_server *s = NULL;
    resil_metrics_server_opts o = RESIL_METRICS_SERVER_OPTS_INIT;
    o.listen = "127.0.0.1:0";
    if (resil_metrics_server_start_opts(&s, resil_metrics_default(), NULL, NULL, &o, NULL) != 0)
        return 1;
    int port = resil_metrics_server_port(s);
    resil_metrics_server_stop(s);
    if (port <= 0) return 2;
    printf("http ok\n");
    return 0;
}
C
pch() { pkg-config --define-variable=prefix="$root" "$@" resil-http; }
cc -std=c11 -Wall -Wextra -Werror "${cflags[@]}" $(pch --cflags) "$tmp/http.c" -o "$tmp/http-shared" \
   $(pch --libs)
LD_LIBRARY_PATH="$root/$libdir" "$tmp/http-shared"
cc -std=c11 -Wall -Wextra -Werror "${cflags[@]}" $(pch --cflags) "$tmp/http.c" -o "$tmp/http-static" \
   "$root/$libdir/libresil-http.a" "$root/$libdir/libresil.a" -lmicrohttpd \
   $(printf '%s\n' $pc_static | grep -v -- '-lresil') # (libmicrohttpd itself shared: Debian has no static gnutls)
"$tmp/http-static"
# The installed command finds its helper relative to itself (a bad --listen
# is refused by the helper's library call: exit 2 naming the address).
set +e
out=$("$root/bin/resil" metrics serve --listen nocolon 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && printf '%s' "$out" | grep -q "listen address 'nocolon'" ||
  { echo "installed resil metrics serve did not run its helper (exit $rc): $out"; exit 1; }
echo "install ok: $prefix ($libdir)"
