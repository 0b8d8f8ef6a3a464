#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_prometheus_e2e.sh RESIL - a real Prometheus scrapes
# `resil metrics serve` and sees what `resil run --metrics-dir` recorded.
#
# Everything listens on 127.0.0.1 only.  Prometheus asks for OpenMetrics
# first (its default Accept header), so this also checks that a real parser
# takes our OpenMetrics output.  Waits are bounded (20 s for each value).
# Exits 77 (skipped) when the prometheus binary is missing.
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
PROMETHEUS=$(command -v prometheus || true)
if [ -z "$PROMETHEUS" ]; then
    echo "ok - prometheus end to end # SKIP prometheus not installed (Debian: apt-get install prometheus)"
    exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-prom.XXXXXX") || exit 1
SERVE_PID=
PROM_PID=
cleanup() {
    local p
    for p in $PROM_PID $SERVE_PID; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $PROM_PID $SERVE_PID; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
unset RESIL_METRICS_DIR RESIL_METRICS_ENABLED RESIL_METRICS_MAX_ENTRIES RESIL_STATE_DIR

. "$HERE/lib.sh"

GUARD=(timeout -k 5 60)
D=$T/metrics

# get PORT PATH: the body of an HTTP/1.0 GET to 127.0.0.1:PORT (bash's
# /dev/tcp; no curl needed); fails unless the status is 200.
get() {
    timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
                        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
                        cat <&3' _ "$1" "$2" >resp.raw 2>/dev/null || return 1
    head -n 1 resp.raw | grep -q '^HTTP/1\.[01] 200' || return 1
    awk 'b { print } /^\r?$/ { b = 1 }' resp.raw
}

# query EXPR: the value of a PromQL expression with one result ("" when
# there is none yet).
query() {
    local q
    q=$(printf '%s' "$1" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/"/%22/g' -e 's/{/%7B/g' \
        -e 's/}/%7D/g' -e 's/=/%3D/g' -e 's/(/%28/g' -e 's/)/%29/g' -e 's/+/%2B/g' \
        -e 's/,/%2C/g')
    get "$PROM_PORT" "/api/v1/query?query=$q" | sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}

# wait_value EXPR WANT: until EXPR evaluates to WANT (at most 20 s).
wait_value() {
    local _ v=
    for _ in $(seq 1 100); do
        v=$(query "$1")
        [ "$v" = "$2" ] && return 0
        kill -0 "$PROM_PID" 2>/dev/null || { echo "prometheus exited:"; tail -n 20 prom.log; return 1; }
        sleep 0.2
    done
    echo "$1: got '$v', want '$2' after 20 s"
    echo "targets: $(get "$PROM_PORT" /api/v1/targets)"
    tail -n 20 prom.log
    return 1
}

# free_port: a port the kernel picks for `resil metrics serve --listen
# 127.0.0.1:0`, released again (for Prometheus's own listener).
free_port() {
    local pid p= _
    "$RESIL" metrics serve --listen 127.0.0.1:0 </dev/null >/dev/null 2>fp.err &
    pid=$!
    for _ in $(seq 1 100); do
        p=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics.*|\1|p' fp.err)
        [ -n "$p" ] && break
        sleep 0.05
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "$p"
}

t_record() {
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$D" --name e2e -- true
    expect "success run" $? 0 || return 1
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$D" --name e2e --max-retries 2 --base-delay 0.01 \
        -- false
    expect "failing run" $? 1
}

# start: `resil metrics serve`, then prometheus scraping it.  Runs in this
# shell, not under `check` (whose command substitution would wait for the
# background processes and lose their pids); t_started reports.
start() {
    local _
    "$RESIL" metrics serve --dir "$D" --listen 127.0.0.1:0 >serve.out 2>serve.err &
    SERVE_PID=$!
    for _ in $(seq 1 100); do
        SERVE_PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics.*|\1|p' \
            serve.err)
        [ -n "$SERVE_PORT" ] && break
        sleep 0.05
    done
    [ -n "$SERVE_PORT" ] || { START_ERROR="serve did not start: $(cat serve.err)"; return 1; }

    local try
    for try in 1 2 3; do
        PROM_PORT=$(free_port)
        [ -n "$PROM_PORT" ] || { START_ERROR="no free port"; return 1; }
        cat >prometheus.yml <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: resil
    static_configs:
      - targets: ['127.0.0.1:$SERVE_PORT']
EOF
        "$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn </dev/null >prom.log 2>&1 &
        PROM_PID=$!
        for _ in $(seq 1 100); do
            get "$PROM_PORT" /-/ready >/dev/null 2>&1 && return 0
            kill -0 "$PROM_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$PROM_PID" 2>/dev/null
        wait "$PROM_PID" 2>/dev/null
        PROM_PID=
        # the port may have been taken meanwhile: another one
    done
    START_ERROR="prometheus did not become ready: $(tail -n 20 prom.log)"
    return 1
}

t_started() {
    [ -z "$START_ERROR" ] || { echo "$START_ERROR"; return 1; }
    echo "serve on 127.0.0.1:$SERVE_PORT, prometheus on 127.0.0.1:$PROM_PORT"
}

t_scraped() {
    wait_value 'up{job="resil"}' 1 || return 1
    wait_value 'resil_retry_attempts_total{name="e2e",result="success"}' 1 || return 1
    wait_value 'resil_retry_attempts_total{name="e2e",result="failure"}' 3 || return 1
    wait_value 'sum(resil_retry_attempts_total{name="e2e"})' 4 || return 1
    wait_value 'sum(resil_retry_calls_total{name="e2e"})' 2 || return 1
    # a healthy scrape: no error on the target
    get "$PROM_PORT" /api/v1/targets >targets.json || return 1
    expect_grep "target health" targets.json '"health":"up"' || return 1
    expect_grep "no scrape error" targets.json '"lastError":""'
}

t_follows_new_runs() {
    "${GUARD[@]}" "$RESIL" run -q --metrics-dir "$D" --name e2e --preset none -- false
    wait_value 'resil_retry_attempts_total{name="e2e",result="failure"}' 4
}

# stop_serve: SIGTERM to serve, in this shell (only it can wait for it).
stop_serve() {
    local _
    kill -TERM "$SERVE_PID"
    for _ in $(seq 1 50); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$SERVE_PID"
    SERVE_RC=$?
    SERVE_PID=
}

t_stopped() { expect "serve's exit status on SIGTERM" "$SERVE_RC" 0; }

check "record: one success, one failure with 2 retries" t_record
START_ERROR=
SERVE_PORT=
PROM_PORT=
start
check "start resil metrics serve and prometheus on loopback" t_started
if [ -n "$PROM_PID" ]; then
    check "prometheus scraped the recorded values" t_scraped
    check "a new run shows in the next scrapes" t_follows_new_runs
    stop_serve
    check "serve stops on SIGTERM with status 0" t_stopped
fi

finish
