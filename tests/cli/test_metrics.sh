#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_metrics.sh RESIL - black-box tests of metrics from the
# command line: `resil run --metrics-dir`, `resil metrics` and
# `resil metrics serve`.
#
# Prints "ok - NAME" / "not ok - NAME" per check (diagnostics on "# " lines)
# and ends with "N passed, M failed"; exits non-zero if anything failed.
# Every check uses a metrics directory of its own under a private temp dir.
# HTTP goes through bash's /dev/tcp (no curl needed); promtool (Debian's
# prometheus package, see scripts/deps.sh) checks the formats and is skipped
# with a note when missing.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-metrics.XXXXXX") || exit 1
cleanup() {
    local p
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/bg.pids"
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

# The environment must not choose for the tests.
unset RESIL_METRICS_DIR RESIL_METRICS_ENABLED RESIL_METRICS_MAX_ENTRIES RESIL_STATE_DIR

FAST=(--base-delay 0.01 --max-delay 0.02)
GUARD=(timeout -k 5 60)
USAGE=2 # the exit status of every usage error of resil (see resil(1))

HAVE_PROMTOOL=0
command -v promtool >/dev/null 2>&1 && HAVE_PROMTOOL=1
HAVE_PY=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null && HAVE_PY=1

. "$HERE/lib.sh"

# countfail FILE: appends a line to FILE (one per run), fails.
cat >countfail <<'EOF'
#!/bin/sh
echo x >>"$1"
exit 1
EOF
chmod +x countfail

# sum_metric FILE METRIC [TEXT...]: the sum of the samples of METRIC (the
# exact sample name) in the Prometheus/OpenMetrics text FILE whose line
# contains every TEXT (fixed strings, e.g. '"mt-ok"').  0 when none.
sum_metric() {
    local file=$1 metric=$2
    shift 2
    awk -v m="$metric" -v nf=$# '
        BEGIN { for (i = 1; i <= nf; i++) want[i] = ARGV[i + 1]; ARGC = 2; s = 0 }
        /^#/ { next }
        {
            name = $0; sub(/[{ ].*/, "", name)
            if (name != m) next
            for (i = 1; i <= nf; i++) if (index($0, want[i]) == 0) next
            s += $NF
        }
        END { printf "%g\n", s }' "$file" "$@"
}

# records DIR: the number of records in DIR/metrics.ndjson.
records() { if [ -f "$1/metrics.ndjson" ]; then wc -l <"$1/metrics.ndjson" | tr -d ' '; else echo 0; fi; }

# ok_run DIR NAME / fail_run DIR NAME RETRIES: one run recording into DIR.
ok_run() { "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$1" --name "$2" -- true; }
fail_run() {
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$1" --name "$2" --max-retries "$3" "${FAST[@]}" \
        -- false
}

# promtool_strict FILE: the text format must pass promtool's parser and lint.
promtool_strict() {
    [ $HAVE_PROMTOOL -eq 1 ] || return 0
    local out rc
    out=$(promtool check metrics <"$1" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "promtool check metrics (exit $rc): $out"
        sed 's/^/  | /' "$1"
        return 1
    fi
}

# openmetrics_ok FILE: OpenMetrics as promtool and the spec want it: it
# parses (promtool's text parser: its lint wants "_total" in the TYPE line
# of a counter, which OpenMetrics forbids, so only parse errors count), ends
# with "# EOF", counter families are named without "_total" and their
# samples with it.
openmetrics_ok() {
    local f=$1 out rc
    if [ $HAVE_PROMTOOL -eq 1 ]; then
        out=$(promtool check metrics <"$f" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
            echo "promtool cannot parse the OpenMetrics text (exit $rc): $out"
            return 1
        fi
        if printf '%s\n' "$out" | grep -v -e 'should have "_total" suffix' \
            -e '_total no help text' -e '_created no help text' | grep -q .; then
            echo "promtool: $out"
            return 1
        fi
    fi
    expect "last line" "$(tail -n 1 "$f")" "# EOF" || return 1
    expect "one # EOF" "$(grep -c '^# EOF' "$f")" 1 || return 1
    if grep -E '^# TYPE [^ ]+_total counter' "$f"; then
        echo "a counter family named with _total (OpenMetrics names the family without it)"
        return 1
    fi
    local fam
    for fam in $(awk '/^# TYPE [^ ]+ counter$/ {print $3}' "$f"); do
        if grep -E "^${fam}[{ ]" "$f"; then
            echo "counter $fam has a sample without _total"
            return 1
        fi
    done
}

# ---- HTTP through /dev/tcp ----------------------------------------------------

# http PORT PATH [METHOD] [ACCEPT]: one HTTP/1.0 request to 127.0.0.1:PORT;
# the status line's code on stdout, headers in resp.head (CR removed), body
# in resp.body.
http() {
    local port=$1 path=$2 method=${3:-GET} accept=${4:-} extra=
    [ -n "$accept" ] && extra="Accept: $accept"$'\r\n'
    rm -f resp.raw resp.head resp.body
    timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
                        printf "%s" "$2" >&3
                        cat <&3 >resp.raw' _ "$port" \
        "$method $path HTTP/1.0"$'\r\n'"Host: 127.0.0.1"$'\r\n'"$extra"$'\r\n' || return 1
    awk 'h == 0 && /^\r?$/ { h = 1; next }
         h == 0 { sub(/\r$/, ""); print > "resp.head"; next }
         { print > "resp.body" }' resp.raw
    [ -f resp.body ] || : >resp.body
    [ -f resp.head ] || : >resp.head
    sed -n '1s/^HTTP\/1\.[01] \([0-9]*\).*/\1/p' resp.head
}

# header NAME: the value of header NAME in resp.head.
header() { awk -v n="$1" 'BEGIN { n = tolower(n) } { k = $0; sub(/:.*/, "", k)
    if (tolower(k) == n) { sub(/^[^:]*: */, ""); print; exit } }' resp.head; }

# start_serve OUTVAR ARGS...: starts `resil metrics serve --listen
# 127.0.0.1:0 ARGS` in the background; sets OUTVAR to its port and
# SERVE_PID to its pid (stderr in serve.err).
start_serve() {
    local var=$1 _ p
    shift
    "$RESIL" metrics serve --listen 127.0.0.1:0 "$@" 2>serve.err &
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
    echo "serve did not report its port:"
    cat serve.err
    return 1
}

# stop_serve SIG: sends SIG and waits (at most 5 s); the exit status must be 0.
stop_serve() {
    local _ rc
    kill -"$1" "$SERVE_PID"
    for _ in $(seq 1 100); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        echo "serve still running 5 s after SIG$1"
        return 1
    fi
    wait "$SERVE_PID"
    rc=$?
    expect "serve's exit status after SIG$1" "$rc" 0
}

# ---- checks ----------------------------------------------------------------------

t_help() {
    "$RESIL" metrics --help >h.out 2>&1; expect "metrics --help status" $? 0 || return 1
    for w in serve --dir --format --listen prometheus openmetrics json RESIL_METRICS_DIR; do
        expect_grep "metrics --help" h.out "$w" || return 1
    done
    "$RESIL" help metrics >/dev/null 2>&1; expect "help metrics status" $? 0 || return 1
    "$RESIL" --help >top.out 2>&1
    expect_grep "resil --help lists metrics" top.out "metrics" || return 1
    "$RESIL" run --help >run.out 2>&1
    expect_grep "run --help" run.out "--metrics-dir" || return 1
}

# One success and one failure with two retries: 1 + 3 attempts.
t_run_sums() {
    local d=$T/m1
    ok_run "$d" mt-ok; expect "success status" $? 0 || return 1
    fail_run "$d" mt-fail 2; expect "failure status" $? 1 || return 1
    "$RESIL" metrics --dir "$d" >p.txt 2>err; expect "metrics status" $? 0 || { cat err; return 1; }
    expect "mt-ok successes" "$(sum_metric p.txt resil_retry_attempts_total '"mt-ok"' '"success"')" 1 \
        || { cat p.txt; return 1; }
    expect "mt-ok failures" "$(sum_metric p.txt resil_retry_attempts_total '"mt-ok"' '"failure"')" 0 \
        || return 1
    expect "mt-fail failures" \
        "$(sum_metric p.txt resil_retry_attempts_total '"mt-fail"' '"failure"')" 3 || return 1
    expect "mt-fail successes" \
        "$(sum_metric p.txt resil_retry_attempts_total '"mt-fail"' '"success"')" 0 || return 1
    expect "mt-ok calls" "$(sum_metric p.txt resil_retry_calls_total '"mt-ok"' \
        '"successful_without_retry"')" 1 || return 1
    expect "mt-fail calls" "$(sum_metric p.txt resil_retry_calls_total '"mt-fail"' \
        '"failed_with_retry"')" 1 || return 1
    expect "calls" "$(sum_metric p.txt resil_retry_calls_total)" 2 || return 1
    # The same sums a second time: reading changes nothing.
    "$RESIL" metrics --dir "$d" >p2.txt
    cmp -s p.txt p2.txt || { echo "a second read differs:"; diff p.txt p2.txt; return 1; }
}

t_formats() {
    local d=$T/m2
    ok_run "$d" fmt-ok
    fail_run "$d" 'fmt "quoted" \ name' 1
    "$RESIL" metrics --dir "$d" --format prometheus >p.txt || return 1
    promtool_strict p.txt || return 1
    grep -q '^# TYPE resil_retry_attempts_total counter$' p.txt \
        || { echo "no counter resil_retry_attempts_total:"; cat p.txt; return 1; }
    grep -qF 'name="fmt \"quoted\" \\ name"' p.txt \
        || { echo "label value not escaped:"; grep fmt p.txt; return 1; }
    # the default format is prometheus
    "$RESIL" metrics --dir "$d" >p0.txt || return 1
    cmp -s p.txt p0.txt || { echo "the default format is not prometheus"; return 1; }

    "$RESIL" metrics --dir "$d" --format openmetrics >om.txt || return 1
    openmetrics_ok om.txt || { sed 's/^/  | /' om.txt; return 1; }
    expect "openmetrics sums" "$(sum_metric om.txt resil_retry_attempts_total '"failure"')" 2 \
        || return 1
    grep -q '^# TYPE resil_retry_attempts counter$' om.txt \
        || { echo "no counter family resil_retry_attempts"; return 1; }

    "$RESIL" metrics --dir "$d" --format=json >j.json || return 1
    if [ $HAVE_PY -eq 1 ]; then
        python3 - j.json <<'EOF' || return 1
import json, sys
doc = json.load(open(sys.argv[1]))
fams = {m["name"]: m for m in doc["metrics"]}
att = [f for n, f in fams.items() if n.startswith("resil_retry_attempts")]
assert len(att) == 1, sorted(fams)
f = att[0]
assert f["type"] == "counter", f
by = {}
for s in f["series"]:
    key = (s["labels"]["name"], s["labels"]["result"])
    by[key] = by.get(key, 0) + s["value"]
assert by.get(("fmt-ok", "success")) == 1, by
assert by.get(('fmt "quoted" \\ name', "failure")) == 2, by
calls = [f for n, f in fams.items() if n.startswith("resil_retry_calls")]
assert len(calls) == 1 and sum(s["value"] for s in calls[0]["series"]) == 2, calls
EOF
    else
        expect_grep "json" j.json '"metrics":[' || return 1
    fi
    # Every format says the same.
    expect "prometheus = openmetrics" "$(sum_metric p.txt resil_retry_attempts_total)" \
        "$(sum_metric om.txt resil_retry_attempts_total)"
}

t_empty_and_missing() {
    mkdir -p "$T/empty"
    "$RESIL" metrics --dir "$T/empty" >e.txt 2>err
    expect "empty dir status" $? 0 || { cat err; return 1; }
    [ ! -s e.txt ] || { echo "output for an empty dir:"; cat e.txt; return 1; }
    "$RESIL" metrics --dir "$T/empty" --format openmetrics >e.txt
    expect "empty openmetrics" "$(cat e.txt)" "# EOF" || return 1
    "$RESIL" metrics --dir "$T/empty" --format json >e.txt
    expect "empty json" "$(tr -d ' \n' <e.txt)" '{"metrics":[]}' || return 1
    "$RESIL" metrics --dir "$T/no-such-dir" >e.txt 2>err
    expect "missing dir status" $? 1 || return 1
    expect_grep "missing dir message" err "$T/no-such-dir" || return 1
    [ ! -e "$T/no-such-dir" ] || { echo "resil metrics created the directory"; return 1; }
}

t_corrupt_record() {
    local d=$T/m3
    ok_run "$d" c-ok
    echo 'this is not a metrics record' >>"$d/metrics.ndjson"
    ok_run "$d" c-ok
    # skipped with a warning naming file and line, the others summed (issue 10)
    "$RESIL" metrics --dir "$d" >c.txt 2>err
    expect "status" $? 0 || { cat err; return 1; }
    expect_grep "names the file and line" err "metrics.ndjson:2:" || return 1
    expect "the others" "$(sum_metric c.txt resil_retry_attempts_total '"c-ok"')" 2 || return 1
}

t_env_dir() {
    local d=$T/m4
    RESIL_METRICS_DIR=$d "${GUARD[@]}" "$RESIL" run -q --name env-run -- true
    expect "run status" $? 0 || return 1
    [ -s "$d/metrics.ndjson" ] || { echo "RESIL_METRICS_DIR not used by run"; return 1; }
    RESIL_METRICS_DIR=$d "$RESIL" metrics >e.txt 2>err
    expect "metrics status" $? 0 || { cat err; return 1; }
    expect "sum" "$(sum_metric e.txt resil_retry_attempts_total '"env-run"')" 1 || return 1
    # --metrics-dir wins over the environment
    RESIL_METRICS_DIR=$T/m4-other "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$d" --name env-run \
        -- true
    [ ! -e "$T/m4-other" ] || { echo "RESIL_METRICS_DIR used despite --metrics-dir"; return 1; }
    RESIL_METRICS_DIR=$T/m4-other "$RESIL" metrics --dir "$d" >e.txt
    expect "sum after --metrics-dir" "$(sum_metric e.txt resil_retry_attempts_total '"env-run"')" 2
}

t_disabled() {
    local d=$T/m5
    RESIL_METRICS_ENABLED=false "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$d" -- true
    expect "run status" $? 0 || return 1
    expect "records written while disabled" "$(records "$d")" 0
}

t_flush_error_is_a_warning() {
    : >notadir
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir notadir/sub -- true >out 2>err
    expect "success status unchanged" $? 0 || return 1
    expect_grep "warning" err "warning" || return 1
    expect_grep "names the directory" err "notadir/sub" || return 1
    expect "warned once" "$(grep -c warning err)" 1 || { cat err; return 1; }
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir notadir/sub --max-retries 2 "${FAST[@]}" \
        -- sh -c 'exit 3' 2>err
    expect "failure status unchanged" $? 3 || return 1
    expect "warned once over 3 attempts" "$(grep -c warning err)" 1 || { cat err; return 1; }
}

t_concurrent_processes() {
    local d=$T/m6 i pids=()
    for i in 1 2 3 4; do
        fail_run "$d" conc 2 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    "$RESIL" metrics --dir "$d" >c.txt || return 1
    expect "4 processes x 3 attempts" \
        "$(sum_metric c.txt resil_retry_attempts_total '"conc"' '"failure"')" 12 || return 1
    expect "calls" "$(sum_metric c.txt resil_retry_calls_total '"conc"' '"failed_with_retry"')" 4
}

# A run killed with SIGKILL keeps what it flushed after each attempt: the
# calls its circuit breaker counted (the retry's own counts are recorded
# when the retry ends, which a killed run never reaches).
t_sigkill_keeps_flushed() {
    local d=$T/m7 pid _ started sum=0
    rm -f runs
    "$RESIL" run -q --metrics-dir "$d" --name killed --breaker kb --state-dir "$T/s7" \
        --failure-threshold 1000000 --forever --delay 0.05 -- ./countfail runs &
    pid=$!
    echo "$pid" >>"$T/bg.pids"
    for _ in $(seq 1 200); do
        if [ "$(records "$d")" -ge 3 ]; then
            "$RESIL" metrics --dir "$d" >k.txt 2>/dev/null
            sum=$(sum_metric k.txt resil_circuitbreaker_calls_total '"kb"' '"failed"')
            [ "$sum" -ge 3 ] && break
        fi
        sleep 0.05
    done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    [ "$sum" -ge 3 ] || { echo "only $sum failed calls flushed after 10 s"; return 1; }
    started=$(wc -l <runs | tr -d ' ')
    "$RESIL" metrics --dir "$d" >k.txt 2>err
    expect "metrics status" $? 0 || { cat err; return 1; }
    sum=$(sum_metric k.txt resil_circuitbreaker_calls_total '"kb"' '"failed"')
    if [ "$sum" -lt 3 ] || [ "$sum" -gt "$started" ]; then
        echo "flushed failed calls: $sum, want 3..$started"
        return 1
    fi
    # and the directory goes on: a new process adds to it
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$d" --breaker kb --state-dir "$T/s7" \
        --failure-threshold 1000000 --preset none -- false
    "$RESIL" metrics --dir "$d" >k2.txt
    expect "after another run" \
        "$(sum_metric k2.txt resil_circuitbreaker_calls_total '"kb"' '"failed"')" "$((sum + 1))"
}

t_serve_http() {
    local d=$T/m8 port code sum
    ok_run "$d" web
    fail_run "$d" web 1
    start_serve port --dir "$d" || return 1

    code=$(http "$port" /metrics); expect "GET /metrics" "$code" 200 || return 1
    expect "content type" "$(header Content-Type)" "text/plain; version=0.0.4; charset=utf-8" \
        || return 1
    expect "served sum" "$(sum_metric resp.body resil_retry_attempts_total '"web"')" 3 \
        || { cat resp.raw; return 1; }
    promtool_strict resp.body || return 1

    code=$(http "$port" /metrics GET \
        'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1')
    expect "GET /metrics (openmetrics)" "$code" 200 || return 1
    expect "openmetrics content type" "$(header Content-Type)" \
        "application/openmetrics-text; version=1.0.0; charset=utf-8" || return 1
    openmetrics_ok resp.body || return 1
    expect "openmetrics sum" "$(sum_metric resp.body resil_retry_attempts_total '"web"')" 3 \
        || return 1

    # a quality of 0 refuses it
    http "$port" /metrics GET 'application/openmetrics-text;q=0, text/plain' >/dev/null
    expect "q=0" "$(header Content-Type)" "text/plain; version=0.0.4; charset=utf-8" || return 1

    code=$(http "$port" '/metrics?format=json' GET 'application/openmetrics-text')
    expect "?format=json" "$code" 200 || return 1
    expect "json content type" "$(header Content-Type)" "application/json" || return 1
    expect_grep "json body" resp.body '"metrics":[' || return 1
    http "$port" '/metrics?format=prometheus' GET 'application/openmetrics-text' >/dev/null
    expect "?format=prometheus wins over Accept" "$(header Content-Type)" \
        "text/plain; version=0.0.4; charset=utf-8" || return 1
    http "$port" '/metrics?format=openmetrics' >/dev/null
    expect "?format=openmetrics" "$(tail -n 1 resp.body)" "# EOF" || return 1
    code=$(http "$port" '/metrics?format=yaml'); expect "?format=yaml" "$code" 400 || return 1

    code=$(http "$port" /healthz); expect "GET /healthz" "$code" 200 || return 1
    expect "healthz body" "$(cat resp.body)" "ok" || return 1
    code=$(http "$port" /nope); expect "GET /nope" "$code" 404 || return 1
    code=$(http "$port" /metrics/x); expect "GET /metrics/x" "$code" 404 || return 1
    code=$(http "$port" /metrics POST); expect "POST /metrics" "$code" 405 || return 1
    expect "Allow" "$(header Allow)" "GET, HEAD" || return 1
    code=$(http "$port" /healthz DELETE); expect "DELETE /healthz" "$code" 405 || return 1
    code=$(http "$port" /metrics HEAD); expect "HEAD /metrics" "$code" 200 || return 1
    [ ! -s resp.body ] || { echo "HEAD returned a body"; return 1; }

    # The directory is read again on every scrape.
    fail_run "$d" web 0
    http "$port" /metrics >/dev/null
    expect "sum after another run" "$(sum_metric resp.body resil_retry_attempts_total '"web"')" 4 \
        || return 1
    stop_serve TERM
}

t_serve_missing_dir_then_created() {
    local d=$T/m9 port code
    start_serve port --dir "$d" || return 1
    expect_grep "says the directory is missing" serve.err "does not exist yet" || return 1
    code=$(http "$port" /metrics); expect "empty scrape" "$code" 200 || return 1
    [ ! -s resp.body ] || { echo "metrics from nowhere:"; cat resp.body; return 1; }
    ok_run "$d" late
    http "$port" /metrics >/dev/null
    expect "after the first run" "$(sum_metric resp.body resil_retry_attempts_total '"late"')" 1 \
        || return 1
    # a corrupt record is skipped (issue 10); an unreadable file: 500 naming
    # it, and the server goes on
    echo '{"metrics": 42}' >>"$d/metrics.ndjson"
    code=$(http "$port" /metrics); expect "corrupt record: 200" "$code" 200 || { cat resp.raw; return 1; }
    mv "$d/metrics.ndjson" "$d/saved"; mkdir "$d/metrics.ndjson"
    code=$(http "$port" /metrics); expect "unreadable: 500" "$code" 500 || { cat resp.raw; return 1; }
    grep -q "metrics.ndjson" resp.body || { echo "a 500 without the file's name"; cat resp.body; return 1; }
    rmdir "$d/metrics.ndjson"; mv "$d/saved" "$d/metrics.ndjson"
    code=$(http "$port" /healthz); expect "still alive" "$code" 200 || return 1
    stop_serve INT
}

t_serve_default_registry() {
    local port code
    start_serve port || return 1
    code=$(http "$port" /metrics); expect "GET /metrics" "$code" 200 || return 1
    promtool_strict resp.body || return 1
    stop_serve TERM
}

t_serve_port_in_use() {
    local port first
    start_serve port || return 1
    first=$SERVE_PID
    "${GUARD[@]}" "$RESIL" metrics serve --listen "127.0.0.1:$port" 2>err
    expect "second server's status" $? 1 || return 1
    expect_grep "names the address" err "127.0.0.1:$port" || return 1
    expect_grep "says why" err "in use" || return 1
    SERVE_PID=$first
    stop_serve TERM
}

# usage_case WANT_TEXT ARGS...: resil ARGS exits 2 naming WANT_TEXT.
usage_case() {
    local want=$1
    shift
    "${GUARD[@]}" "$RESIL" "$@" >out 2>err
    local rc=$?
    if [ $rc -ne $USAGE ]; then
        echo "resil $*: exit $rc, want $USAGE"
        cat err
        return 1
    fi
    expect_grep "resil $*" err "$want"
}

t_usage_errors() {
    usage_case "--dir" metrics || return 1
    usage_case "--format" metrics --dir x --format yaml || return 1
    usage_case "--dir" metrics --dir || return 1
    usage_case "--dir" metrics --dir= || return 1
    usage_case "--bogus" metrics --dir x --bogus || return 1
    usage_case "frobnicate" metrics frobnicate || return 1
    usage_case "--listen" metrics --dir x --listen 127.0.0.1:0 || return 1
    usage_case "--format" metrics serve --format json || return 1
    usage_case "--listen" metrics serve --listen nonsense || return 1
    usage_case "--listen" metrics serve --listen 127.0.0.1:99999 || return 1
    usage_case "--listen" metrics serve --listen ::1:9464 || return 1
    usage_case "--listen" metrics serve --listen :9464 || return 1
    usage_case "--listen" metrics serve --listen || return 1
    usage_case "extra" metrics serve extra || return 1
    usage_case "--metrics-dir" run --metrics-dir '' -- true || return 1
    usage_case "--metrics-dir" run --metrics-dir || return 1
}

check "help" t_help
check "run --metrics-dir twice: metrics --dir shows the sums" t_run_sums
check "prometheus, openmetrics and json formats" t_formats
check "an empty directory, a missing one" t_empty_and_missing
check "a corrupt record is skipped, named with its line" t_corrupt_record
check "RESIL_METRICS_DIR is the default directory" t_env_dir
check "RESIL_METRICS_ENABLED=false writes nothing" t_disabled
check "a flush error is a warning, never the exit status" t_flush_error_is_a_warning
check "concurrent processes add up" t_concurrent_processes
check "a process killed with SIGKILL keeps its flushed counts" t_sigkill_keeps_flushed
check "serve: negotiation, formats, healthz, 404, 405, re-read" t_serve_http
check "serve: a directory created later, a corrupt one" t_serve_missing_dir_then_created
check "serve without a directory: the default registry" t_serve_default_registry
check "serve: a port in use is an error naming it" t_serve_port_in_use
check "usage errors exit $USAGE naming the option" t_usage_errors

finish
