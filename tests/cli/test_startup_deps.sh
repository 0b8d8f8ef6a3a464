#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_startup_deps.sh RESIL - the command loads no HTTP stack:
# `resil version` and `resil ndjson append` map no libmicrohttpd (nor its
# TLS libraries), and `resil metrics serve` is run by the helper
# resil-metrics-serve (exec'd in place: same pid), which is found next to
# the binary and named in a clear error when it is missing.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 /path/to/resil" >&2
    exit 2
fi
RESIL=$1
case $RESIL in /*) ;; *) RESIL=$PWD/$RESIL ;; esac
. "$HERE/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1

# The libraries the dynamic loader maps, as it reports them.
loaded() { LD_DEBUG=libs "$@" 2>&1 >/dev/null | sed -n 's/.*calling init: \(.*\)/\1/p'; }

t_version_no_http() {
    local libs
    libs=$(loaded "$RESIL" version)
    [ -n "$libs" ] || { echo "LD_DEBUG=libs reported nothing"; return 1; }
    if printf '%s\n' "$libs" | grep -Eq 'microhttpd|gnutls|nettle|gmp|p11-kit'; then
        echo "resil version loads:"; printf '%s\n' "$libs"; return 1
    fi
}

t_append_no_http() {
    local libs
    libs=$(loaded "$RESIL" ndjson append "$TMP/log.ndjson" '{"a":1}')
    grep -qx '{"a":1}' "$TMP/log.ndjson" || { echo "the record was not appended"; return 1; }
    if printf '%s\n' "$libs" | grep -Eq 'microhttpd|gnutls'; then
        echo "resil ndjson append loads:"; printf '%s\n' "$libs"; return 1
    fi
}

t_serve_is_the_helper() {
    "$RESIL" metrics serve --listen 127.0.0.1:0 2>serve.err &
    local pid=$! i exe=""
    for i in $(seq 1 100); do
        grep -q 'listening on' serve.err 2>/dev/null && break
        sleep 0.05
    done
    exe=$(readlink "/proc/$pid/exe")
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    expect "exit status after SIGTERM" "$rc" 0 || return 1
    grep -q 'listening on http://127.0.0.1:' serve.err || { cat serve.err; return 1; }
    case $exe in
        */resil-metrics-serve) ;;
        *) echo "the serving process is $exe, not resil-metrics-serve"; return 1 ;;
    esac
}

t_missing_helper() {
    cp "$RESIL" "$TMP/resil-alone"
    local rc
    timeout 10 "$TMP/resil-alone" metrics serve --listen 127.0.0.1:0 2>alone.err
    rc=$?
    expect "exit status" "$rc" 1 || return 1
    expect_grep "message" alone.err "resil metrics serve: cannot run its helper resil-metrics-serve" ||
        return 1
    # usage errors are still the command's own, helper or not
    "$TMP/resil-alone" metrics serve --format json 2>alone.err
    expect "usage exit status" "$?" 2
}

check "resil version maps no libmicrohttpd" t_version_no_http
check "resil ndjson append maps no libmicrohttpd" t_append_no_http
check "resil metrics serve runs as resil-metrics-serve (same pid)" t_serve_is_the_helper
check "a missing helper is an error naming it" t_missing_helper
finish
