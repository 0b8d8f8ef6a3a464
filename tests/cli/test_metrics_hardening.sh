#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_metrics_hardening.sh RESIL - metrics against hostile or
# unlucky input (issue 10): a run name that is not UTF-8, a corrupt record
# in the middle of a metrics directory, a slow client on `metrics serve`,
# and (as root) a metrics directory that another user can write or has
# planted a link in.
#
# Prints "ok - NAME" / "not ok - NAME" per check and ends with "N passed,
# M failed"; checks that need root are reported as SKIP otherwise.
# promtool (Debian's prometheus package, see scripts/deps.sh) checks the
# output when it is installed.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 /path/to/resil" >&2
    exit 2
fi
RESIL=$1
case $RESIL in /*) ;; *) RESIL=$PWD/$RESIL ;; esac
if [ ! -x "$RESIL" ]; then
    echo "$0: $RESIL is not executable" >&2
    exit 2
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-mhard.XXXXXX") || exit 1
cleanup() {
    local p
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/bg.pids"
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
chmod 0755 "$T" # others must be able to reach the directories below (uid 65534)

unset RESIL_METRICS_DIR RESIL_METRICS_ENABLED RESIL_METRICS_MAX_ENTRIES RESIL_STATE_DIR \
    RESIL_METRICS_DIR_SHARED
GUARD=(timeout -k 5 60)
HAVE_PROMTOOL=0
command -v promtool >/dev/null 2>&1 && HAVE_PROMTOOL=1

. "$HERE/lib.sh"

# promtool_ok FILE: the text format passes promtool's parser and lint.
promtool_ok() {
    [ $HAVE_PROMTOOL -eq 1 ] || return 0
    local out
    if ! out=$(promtool check metrics <"$1" 2>&1); then
        echo "promtool check metrics: $out"
        sed 's/^/  | /' "$1"
        return 1
    fi
}

# value FILE SAMPLE_PREFIX: the value of the first sample line starting so.
value() { grep -F -- "$2" "$1" | grep -v '^#' | head -n 1 | awk '{print $NF}'; }

# http PORT PATH: one HTTP/1.0 GET; the status code on stdout, the body in
# resp.body.
http() {
    rm -f resp.raw resp.body
    timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
                        printf "%s" "$2" >&3
                        cat <&3 >resp.raw' _ "$1" \
        "GET $2 HTTP/1.0"$'\r\n'"Host: 127.0.0.1"$'\r\n'$'\r\n' || return 1
    awk 'h == 1 { print > "resp.body" } h == 0 && /^\r?$/ { h = 1 }' resp.raw
    [ -f resp.body ] || : >resp.body
    sed -n '1s/^HTTP\/1\.[01] \([0-9]*\).*/\1/p' resp.raw
}

# start_serve OUTVAR ARGS...: `resil metrics serve --listen 127.0.0.1:0
# ARGS` in the background (stderr in serve.err); OUTVAR gets its port.
start_serve() {
    local var=$1 _ p
    shift
    "$RESIL" metrics serve --listen 127.0.0.1:0 "$@" >/dev/null 2>serve.err </dev/null &
    SERVE_PID=$!
    echo "$SERVE_PID" >>"$T/bg.pids"
    for _ in $(seq 1 100); do
        p=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics.*|\1|p' serve.err)
        if [ -n "$p" ]; then
            printf -v "$var" '%s' "$p"
            return 0
        fi
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "serve did not report its port:"; cat serve.err
    return 1
}

stop_serve() {
    kill -TERM "$SERVE_PID"
    wait "$SERVE_PID"
    expect "serve's exit status" $? 0
}

# ---- checks ----------------------------------------------------------------------

t_name_not_utf8() {
    # the exact repro of the issue
    "${GUARD[@]}" "$RESIL" run -q --name $'\xff' --metrics-dir md -- true
    expect "run status" $? 0 || return 1
    "$RESIL" metrics --dir md >out.txt 2>err
    expect "metrics status" $? 0 || { cat err; return 1; }
    [ ! -s err ] || { echo "a warning for a valid directory:"; cat err; return 1; }
    expect "the series, with U+FFFD" \
        "$(value out.txt 'resil_retry_attempts_total{name="'$'\xef\xbf\xbd''",result="success"}')" 1 \
        || { cat out.txt; return 1; }
    if LC_ALL=C grep -q $'\xff' out.txt; then echo "a raw 0xff byte in the output"; return 1; fi
    promtool_ok out.txt || return 1
    "$RESIL" metrics --dir md --format json >out.json || return 1
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' out.json \
            || { echo "the JSON export does not parse"; return 1; }
    fi
}

t_corrupt_middle_record() {
    local d=$T/mc
    "${GUARD[@]}" "$RESIL" run -q --name first --metrics-dir "$d" -- true || return 1
    "${GUARD[@]}" "$RESIL" run -q --name middle --metrics-dir "$d" -- true || return 1
    "${GUARD[@]}" "$RESIL" run -q --name last --metrics-dir "$d" -- true || return 1
    # corrupt record 2 by hand: cut it in the middle, the newline kept
    awk 'NR == 2 { print substr($0, 1, 40); next } { print }' "$d/metrics.ndjson" >x &&
        cat x >"$d/metrics.ndjson"
    "$RESIL" metrics --dir "$d" >out.txt 2>err
    expect "status" $? 0 || { cat err; return 1; }
    expect_grep "the warning names file and line" err "$d/metrics.ndjson:2:" || return 1
    expect "first exported" "$(value out.txt '{name="first",result="success"}')" 1 || return 1
    expect "last exported" "$(value out.txt '{name="last",result="success"}')" 1 || return 1
    if grep -q '"middle"' out.txt; then echo "the corrupt record was summed"; return 1; fi
    expect "counted" "$(value out.txt 'resil_metrics_dir_bad_records_total')" 1 || return 1
    promtool_ok out.txt || return 1

    # serve: 200 with the good records, and the warning once on stderr
    local port code
    start_serve port --dir "$d" || return 1
    code=$(http "$port" /metrics); expect "scrape" "$code" 200 || return 1
    expect "last served" "$(value resp.body '{name="last",result="success"}')" 1 || return 1
    promtool_ok resp.body || return 1
    http "$port" /metrics >/dev/null
    expect "one warning" "$(grep -c 'metrics.ndjson:2:' serve.err)" 1 || { cat serve.err; return 1; }
    # an unreadable file: 500 naming it
    mv "$d/metrics.ndjson" "$d/saved" && mkdir "$d/metrics.ndjson"
    code=$(http "$port" /metrics); expect "unreadable" "$code" 500 || return 1
    expect_grep "the 500 names the file" resp.body "$d/metrics.ndjson" || return 1
    stop_serve || return 1
}

t_serve_slow_client() {
    local port t0 t1 ms
    start_serve port --request-timeout 500ms || return 1
    # a client that trickles a header byte every 0.1 s: closed at ~0.5 s
    t0=$(now_ms)
    timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /metrics HTTP/1.1\r\n" >&3
        for i in $(seq 1 60); do printf "X" >&3 2>/dev/null || exit 0; sleep 0.1; done
        exit 3' _ "$port"
    local rc=$?
    t1=$(now_ms); ms=$((t1 - t0))
    # 0: a write failed; 141: SIGPIPE on a write (3: never cut off, 124: hung)
    [ "$rc" -eq 0 ] || [ "$rc" -eq 141 ] || { echo "the trickler was not cut off (status $rc)"; return 1; }
    [ "$ms" -ge 400 ] && [ "$ms" -le 3000 ] || { echo "closed after $ms ms, want ~500"; return 1; }
    expect "a scrape after it" "$(http "$port" /healthz)" 200 || return 1
    # a client that connects and hangs up
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "GET /me" >&3; exec 3>&-' _ "$port"
    sleep 0.2
    expect "stderr: the listening line only" "$(grep -vc 'listening on' serve.err)" 0 \
        || { cat serve.err; return 1; }
    stop_serve || return 1
    # --verbose shows the server's messages
    start_serve port --request-timeout 0.3 --verbose || return 1
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "GET /me" >&3; sleep 1' _ "$port"
    sleep 0.2
    stop_serve || return 1
    grep -q 'http: ' serve.err || { echo "--verbose printed nothing:"; cat serve.err; return 1; }
}

t_usage() {
    "$RESIL" metrics serve --request-timeout 0 >/dev/null 2>err
    expect "--request-timeout 0" $? 2 || return 1
    expect_grep "names the option" err "--request-timeout" || return 1
    "$RESIL" metrics --dir x --request-timeout 5 >/dev/null 2>err
    expect "--request-timeout without serve" $? 2 || return 1
    "$RESIL" metrics serve --help >help.txt || return 1
    expect_grep "help" help.txt "--request-timeout" || return 1
}

t_shared_dir_refused() {
    local d=$T/shared
    mkdir "$d" && chmod 0777 "$d"
    "${GUARD[@]}" "$RESIL" run -q --name s --metrics-dir "$d" -- true 2>err
    expect "run status (a flush failure is a warning)" $? 0 || return 1
    expect_grep "the warning says why" err "refusing the directory $d" || return 1
    [ ! -e "$d/metrics.ndjson" ] || { echo "written into a world-writable directory"; return 1; }
    RESIL_METRICS_DIR_SHARED=1 "${GUARD[@]}" "$RESIL" run -q --name s --metrics-dir "$d" -- true \
        2>err || return 1
    [ -s "$d/metrics.ndjson" ] || { echo "the opt-in did not write"; cat err; return 1; }
    local d2=$T/foreign
    mkdir "$d2" && chown 65534:65534 "$d2" && chmod 0700 "$d2"
    "${GUARD[@]}" "$RESIL" run -q --name s --metrics-dir "$d2" -- true 2>err
    expect_grep "a foreign directory" err "owned by uid 65534" || return 1
    [ ! -e "$d2/metrics.ndjson" ] || { echo "written into another user's directory"; return 1; }
}

t_planted_link() {
    local d=$T/planted v=$T/victim.conf
    printf 'key = value\nlast line without newline' >"$v"
    cp "$v" victim.orig
    mkdir "$d" && chmod 1777 "$d"
    ln -s "$v" "$d/metrics.ndjson" && chown -h 65534:65534 "$d/metrics.ndjson"
    RESIL_METRICS_DIR_SHARED=1 "${GUARD[@]}" "$RESIL" run -q --name p --metrics-dir "$d" -- true 2>err
    expect "run status" $? 0 || return 1
    expect_grep "the link is refused" err "symbolic link" || return 1
    cmp -s "$v" victim.orig || { echo "the victim changed:"; cat "$v"; return 1; }
    # a planted lock sidecar, the same
    rm -f "$d/metrics.ndjson"
    ln -s "$v" "$d/metrics.ndjson.lock" && chown -h 65534:65534 "$d/metrics.ndjson.lock"
    RESIL_METRICS_DIR_SHARED=1 "${GUARD[@]}" "$RESIL" run -q --name p --metrics-dir "$d" -- true 2>err
    expect_grep "the lock link is refused" err "metrics.ndjson.lock" || return 1
    cmp -s "$v" victim.orig || { echo "the victim changed:"; cat "$v"; return 1; }
}

check "a --name that is not UTF-8 is exported with U+FFFD" t_name_not_utf8
check "a corrupt record in the middle is skipped, counted, named" t_corrupt_middle_record
check "serve: a trickling client is cut at --request-timeout, quietly" t_serve_slow_client
check "serve: --request-timeout usage" t_usage
if [ "$(id -u)" -eq 0 ]; then
    check "a world-writable or foreign metrics directory is refused" t_shared_dir_refused
    check "a link planted in a metrics directory is never followed" t_planted_link
else
    skip "a world-writable or foreign metrics directory is refused" "needs root"
    skip "a link planted in a metrics directory is never followed" "needs root"
fi

finish
