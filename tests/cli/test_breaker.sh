#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_breaker.sh RESIL - black-box tests of circuit breakers from
# the command line: `resil run --breaker` and `resil breaker ...`.
#
# Prints "ok - NAME" / "not ok - NAME" per check (diagnostics on "# " lines)
# and ends with "N passed, M failed"; exits non-zero if anything failed.
# Every check uses a state directory of its own under a private temp dir.
# Nothing sleeps long: recovery timeouts are 0.2 s where a test waits for
# half-open, 60 s (the default) where it must not come.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-breaker.XXXXXX") || exit 1
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
unset RESIL_STATE_DIR CIRCUIT_BREAKER_DEFAULT_THRESHOLD CIRCUIT_BREAKER_DEFAULT_TIMEOUT

FAST=(--base-delay 0.01 --max-delay 0.02)
GUARD=(timeout -k 5 60)
USAGE=2 # the exit status of every usage error of resil (see resil(1))

HAVE_PY=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null && HAVE_PY=1

. "$HERE/lib.sh"

count_of() { cat "$1" 2>/dev/null || echo 0; }

# mark COUNTFILE CODE: counts its runs in COUNTFILE, exits CODE.
cat >mark <<'EOF'
#!/bin/sh
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$1"
exit "$2"
EOF
chmod +x mark

# slowfail COUNTFILE: counts its runs, takes 0.1 s, fails.
cat >slowfail <<'EOF2'
#!/bin/sh
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$1"
sleep 0.1
exit 1
EOF2
chmod +x slowfail

# jget FILE KEY: the value of KEY in the one-line JSON object in FILE (the
# compact output of status --json: no nested objects).
jget() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" "$1"; }

# gt X Y: X > Y for decimal numbers.
gt() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x + 0 > y + 0) }'; }

wait_count() { # wait_count FILE N: until FILE holds N (at most 5 s)
    local _
    for _ in $(seq 1 100); do
        [ "$(count_of "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# fail_n DIR NAME N [OPTS...]: N one-attempt failing runs of `false`.
fail_n() {
    local dir=$1 name=$2 n=$3
    shift 3
    while [ "$n" -gt 0 ]; do
        n=$((n - 1))
        "${GUARD[@]}" "$RESIL" run -q --preset none --breaker "$name" --state-dir "$dir" "$@" \
            -- false
    done
}

# ---- checks --------------------------------------------------------------------

t_help() {
    "$RESIL" breaker --help >h.out 2>&1; expect "breaker --help status" $? 0 || return 1
    for w in list status trip reset disable --state-dir --json; do
        expect_grep "breaker --help" h.out "$w" || return 1
    done
    "$RESIL" help breaker >/dev/null 2>&1; expect "help breaker status" $? 0 || return 1
    "$RESIL" --help >top.out 2>&1
    expect_grep "resil --help lists breaker" top.out "breaker" || return 1
    "$RESIL" run --help >run.out 2>&1
    for w in --breaker --failure-threshold --recovery-timeout --state-dir; do
        expect_grep "run --help" run.out "$w" || return 1
    done
}

t_trips_after_n_failures() {
    local s=$T/s1
    rm -f c
    # Retries stop when the breaker opens: 3 attempts, not 11.
    "${GUARD[@]}" "$RESIL" run --breaker svc --failure-threshold 3 --max-retries 10 "${FAST[@]}" \
        --state-dir "$s" -- ./mark c 1 2>err
    expect "status" $? 75 || return 1
    expect "attempts" "$(count_of c)" 3 || return 1
    expect_grep "message" err "circuit svc is open, half-open in " || return 1
    expect_grep "message says how far it got" err "stopped after 3 attempts (exit 1)" || return 1
    [ -f "$s/svc.cb" ] || { echo "no state file $s/svc.cb"; return 1; }
}

t_open_refuses_without_running() {
    local s=$T/s2
    fail_n "$s" svc 2 --failure-threshold 2 || true
    rm -f ran
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir "$s" -- touch ran 2>err
    expect "status" $? 75 || return 1
    [ ! -e ran ] || { echo "the command ran while the circuit was open"; return 1; }
    expect_grep "message" err "circuit svc is open, half-open in " || return 1
    expect "stderr lines" "$(wc -l <err | tr -d ' ')" 1 || return 1
    # --quiet silences the message, not the status
    "${GUARD[@]}" "$RESIL" run -q --breaker svc --state-dir "$s" -- touch ran 2>err
    expect "quiet status" $? 75 || return 1
    [ ! -s err ] || { echo "--quiet printed:"; cat err; return 1; }
    [ ! -e ran ] || { echo "the command ran while the circuit was open"; return 1; }
}

t_status_json_open() {
    local s=$T/s3 v
    fail_n "$s" svc 3 --failure-threshold 3 || true
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json 2>err
    expect "status" $? 0 || return 1
    expect "state" "$(jget st.json state)" '"open"' || return 1
    expect "name" "$(jget st.json name)" '"svc"' || return 1
    expect "consecutive_failures" "$(jget st.json consecutive_failures)" 3 || return 1
    expect "failed" "$(jget st.json failed)" 3 || return 1
    expect "successful" "$(jget st.json successful)" 0 || return 1
    expect "open_streak" "$(jget st.json open_streak)" 1 || return 1
    v=$(jget st.json time_until_half_open_s)
    gt "$v" 0 || { echo "time_until_half_open_s is '$v'"; cat st.json; return 1; }
    gt 60.001 "$v" || { echo "time_until_half_open_s is '$v' (more than 60 s)"; return 1; }
    local k
    for k in ignored not_permitted failure_rate half_open_in_flight epoch open_duration_s; do
        [ -n "$(jget st.json $k)" ] || { echo "no $k in:"; cat st.json; return 1; }
    done
    if [ $HAVE_PY = 1 ]; then
        python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["failure_rate"] == 1.0, d' \
            st.json || return 1
    fi
    # Human-readable
    "$RESIL" breaker status svc --state-dir "$s" >st.txt 2>&1
    expect "human status" $? 0 || return 1
    expect_grep "human state" st.txt "open (half-open in " || return 1
    expect_grep "human failures" st.txt "consecutive failures: 3"
}

t_recovery_closes() {
    local s=$T/s4
    fail_n "$s" svc 2 --failure-threshold 2 --recovery-timeout 0.2 || true
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "state before" "$(jget st.json state)" '"open"' || return 1
    sleep 0.3
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "state after the timeout" "$(jget st.json state)" '"half_open"' || return 1
    rm -f ran
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir "$s" -- touch ran
    expect "trial status" $? 0 || return 1
    [ -e ran ] || { echo "the trial did not run"; return 1; }
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "state" "$(jget st.json state)" '"closed"' || return 1
    expect "consecutive_failures" "$(jget st.json consecutive_failures)" 0 || return 1
    expect "time_until_half_open_s" "$(jget st.json time_until_half_open_s)" 0.0
}

t_half_open_failure_reopens() {
    local s=$T/s5
    fail_n "$s" svc 1 --failure-threshold 1 --recovery-timeout 0.2 || true
    sleep 0.3
    rm -f c
    # The trial fails: open again at once, the retry stops (1 attempt).
    "${GUARD[@]}" "$RESIL" run --breaker svc --recovery-timeout 0.2 --max-retries 5 "${FAST[@]}" \
        --state-dir "$s" -- ./mark c 1 2>err
    expect "status" $? 75 || return 1
    expect "attempts" "$(count_of c)" 1 || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "state" "$(jget st.json state)" '"open"' || return 1
    expect "open_streak" "$(jget st.json open_streak)" 2
}

t_attempt_timeout_is_failure() {
    local s=$T/s6
    "${GUARD[@]}" "$RESIL" run -q --preset none --attempt-timeout 0.1 --kill-after 0.1 \
        --breaker slow --failure-threshold 1 --state-dir "$s" -- sleep 5
    expect "status" $? 124 || return 1
    "$RESIL" breaker status slow --json --state-dir "$s" >st.json
    expect "state" "$(jget st.json state)" '"open"' || return 1
    expect "failed" "$(jget st.json failed)" 1
}

t_not_run_is_ignored() {
    local s=$T/s7
    # A command that cannot be started says nothing about the service.
    "${GUARD[@]}" "$RESIL" run --breaker svc --failure-threshold 1 --state-dir "$s" \
        -- resil-no-such-command-xyz 2>/dev/null
    expect "status" $? 127 || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "state" "$(jget st.json state)" '"closed"' || return 1
    expect "ignored" "$(jget st.json ignored)" 1 || return 1
    expect "failed" "$(jget st.json failed)" 0
}

t_trip_disable_reset() {
    local s=$T/s8
    "$RESIL" run -q --breaker svc --state-dir "$s" -- true || return 1
    "$RESIL" breaker trip svc --state-dir "$s" >out 2>&1
    expect "trip status" $? 0 || return 1
    expect_grep "trip output" out "svc: closed -> forced_open" || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "tripped" "$(jget st.json state)" '"forced_open"' || return 1
    expect "forced: time_until_half_open_s" "$(jget st.json time_until_half_open_s)" null || return 1
    rm -f ran
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir "$s" -- touch ran 2>err
    expect "run while forced open" $? 75 || return 1
    [ ! -e ran ] || { echo "ran while forced open"; return 1; }
    expect_grep "forced message" err "circuit svc is forced open" || return 1

    "$RESIL" breaker disable svc --state-dir "$s" >out 2>&1
    expect "disable status" $? 0 || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "disabled" "$(jget st.json state)" '"disabled"' || return 1
    rm -f c
    # Disabled: everything runs (and is counted), however often it fails.
    "${GUARD[@]}" "$RESIL" run -q --breaker svc --failure-threshold 1 --max-retries 2 "${FAST[@]}" \
        --state-dir "$s" -- ./mark c 1
    expect "run while disabled" $? 1 || return 1
    expect "attempts while disabled" "$(count_of c)" 3 || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "still disabled" "$(jget st.json state)" '"disabled"' || return 1

    "$RESIL" breaker reset svc --json --state-dir "$s" >st.json 2>err
    expect "reset status" $? 0 || return 1
    expect "reset --json prints the new state" "$(jget st.json state)" '"closed"' || return 1
    expect "reset clears failures" "$(jget st.json consecutive_failures)" 0 || return 1
    expect "totals are kept" "$(jget st.json failed)" 3
}

t_list() {
    local s=$T/s9
    "$RESIL" run -q --breaker alpha --state-dir "$s" -- true || return 1
    fail_n "$s" beta 2 --failure-threshold 2 || true
    "$RESIL" run -q --breaker 'gamma/x y' --state-dir "$s" -- true || return 1
    "$RESIL" breaker trip 'gamma/x y' --state-dir "$s" >/dev/null || return 1
    "$RESIL" breaker list --state-dir "$s" >ls.out 2>err
    expect "list status" $? 0 || return 1
    expect "list lines (header + 3)" "$(wc -l <ls.out | tr -d ' ')" 4 || return 1
    grep -Eq '^alpha +closed +0 ' ls.out || { echo "alpha:"; cat ls.out; return 1; }
    grep -Eq '^beta +open +2 ' ls.out || { echo "beta:"; cat ls.out; return 1; }
    grep -Eq '^gamma/x y +forced_open +0 ' ls.out || { echo "gamma:"; cat ls.out; return 1; }
    "$RESIL" breaker list --json --state-dir "$s" >ls.json 2>err
    expect "list --json status" $? 0 || return 1
    if [ $HAVE_PY = 1 ]; then
        python3 - ls.json <<'EOF' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
got = [(b["name"], b["state"], b["consecutive_failures"]) for b in d]
want = [("alpha", "closed", 0), ("beta", "open", 2), ("gamma/x y", "forced_open", 0)]
if got != want:
    print("list --json:", got)
    sys.exit(1)
EOF
    else
        expect_grep "list --json" ls.json '"name":"beta","state":"open"' || return 1
    fi
    # An empty directory lists nothing; a missing one is an error.
    mkdir -p "$T/empty"
    "$RESIL" breaker list --json --state-dir "$T/empty" >e.json
    expect "empty list status" $? 0 || return 1
    expect "empty list" "$(cat e.json)" "[]" || return 1
    "$RESIL" breaker list --state-dir "$T/no-such-dir" >/dev/null 2>err
    expect "missing dir status" $? 1 || return 1
    expect_grep "missing dir message" err "no-such-dir"
}

t_missing_breaker() {
    local s=$T/s10 a
    mkdir -p "$s"
    for a in status trip disable reset; do
        "$RESIL" breaker $a nosuch --state-dir "$s" >out 2>err
        expect "$a status" $? 1 || return 1
        expect_grep "$a message" err "no breaker nosuch in $s" || return 1
    done
    [ ! -e "$s/nosuch.cb" ] || { echo "an inspecting command created a state file"; return 1; }
}

t_corrupt_file() {
    local s=$T/s11
    "$RESIL" run -q --breaker svc --state-dir "$s" -- true || return 1
    echo "this is not a breaker" >"$s/svc.cb"
    "$RESIL" breaker status svc --state-dir "$s" >out 2>err
    expect "status on garbage" $? 1 || return 1
    expect_grep "names the file" err "$s/svc.cb" || return 1
    expect_grep "suggests reset" err "resil breaker reset svc --state-dir $s" || return 1
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir "$s" -- touch ran >/dev/null 2>err
    expect "run on garbage" $? 1 || return 1
    [ ! -e ran ] || { echo "ran with an unreadable breaker"; return 1; }
    expect_grep "run names the file" err "$s/svc.cb" || return 1
    "$RESIL" breaker reset svc --state-dir "$s" >out 2>err
    expect "reset repairs" $? 0 || return 1
    expect_grep "reset says what it found" err "$s/svc.cb" || return 1
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json 2>err
    expect "status after reset" $? 0 || return 1
    expect "state after reset" "$(jget st.json state)" '"closed"' || return 1

    # Right size, wrong bytes; then a truncated file.
    local size
    size=$(stat -c %s "$s/svc.cb")
    head -c "$size" /dev/urandom >"$s/svc.cb"
    "$RESIL" breaker status svc --state-dir "$s" >out 2>err
    expect "status on random bytes" $? 1 || return 1
    expect_grep "defect" err "corrupt" || return 1
    "$RESIL" breaker reset svc --state-dir "$s" >/dev/null 2>&1 || { echo "reset failed"; return 1; }
    head -c 100 "$s/svc.cb" >trunc && cat trunc >"$s/svc.cb"
    "$RESIL" breaker status svc --state-dir "$s" >out 2>err
    expect "status on truncated" $? 1 || return 1
    expect_grep "truncated message" err "100 bytes" || return 1
    "$RESIL" breaker reset svc --state-dir "$s" >/dev/null 2>&1 || { echo "reset failed"; return 1; }
    "$RESIL" run -q --breaker svc --state-dir "$s" -- true
    expect "usable after reset" $? 0
}

t_usage_errors() {
    local s=$T/s12
    "$RESIL" run --breaker svc -- true >/dev/null 2>err
    expect "--breaker without a state dir" $? $USAGE || return 1
    expect_grep "no state dir message" err "state directory" || return 1
    expect_grep "names RESIL_STATE_DIR" err "RESIL_STATE_DIR" || return 1
    RESIL_STATE_DIR='' "$RESIL" run --breaker svc -- true >/dev/null 2>err
    expect "empty RESIL_STATE_DIR" $? $USAGE || return 1
    local bad
    for bad in abc 0 -1 1.5 1000001 ""; do
        "$RESIL" run --breaker svc --state-dir "$s" --failure-threshold "$bad" -- true \
            >/dev/null 2>err
        expect "--failure-threshold '$bad'" $? $USAGE || return 1
        expect_grep "--failure-threshold '$bad' message" err "--failure-threshold" || return 1
    done
    for bad in abc 0 -1 1x inf; do
        "$RESIL" run --breaker svc --state-dir "$s" --recovery-timeout "$bad" -- true \
            >/dev/null 2>err
        expect "--recovery-timeout '$bad'" $? $USAGE || return 1
        expect_grep "--recovery-timeout '$bad' message" err "--recovery-timeout" || return 1
    done
    "$RESIL" run --failure-threshold 3 -- true >/dev/null 2>err
    expect "--failure-threshold without --breaker" $? $USAGE || return 1
    expect_grep "needs --breaker" err "needs --breaker" || return 1
    "$RESIL" run --breaker "" --state-dir "$s" -- true >/dev/null 2>err
    expect "empty --breaker" $? $USAGE || return 1
    "$RESIL" run --breaker "$(printf 'n%.0s' $(seq 1 201))" --state-dir "$s" -- true \
        >/dev/null 2>err
    expect "--breaker name too long" $? $USAGE || return 1
    [ ! -e "$s" ] || { echo "a usage error created the state dir"; return 1; }

    "$RESIL" breaker >/dev/null 2>err; expect "no action" $? $USAGE || return 1
    "$RESIL" breaker frobnicate svc --state-dir "$s" >/dev/null 2>err
    expect "unknown action" $? $USAGE || return 1
    expect_grep "unknown action message" err "frobnicate" || return 1
    "$RESIL" breaker status --state-dir "$s" >/dev/null 2>err
    expect "missing NAME" $? $USAGE || return 1
    expect_grep "missing NAME message" err "NAME" || return 1
    "$RESIL" breaker status svc extra --state-dir "$s" >/dev/null 2>err
    expect "extra argument" $? $USAGE || return 1
    "$RESIL" breaker list svc --state-dir "$s" >/dev/null 2>err
    expect "list takes no NAME" $? $USAGE || return 1
    "$RESIL" breaker status svc --bogus --state-dir "$s" >/dev/null 2>err
    expect "unknown option" $? $USAGE || return 1
    "$RESIL" breaker status svc >/dev/null 2>err
    expect "breaker without a state dir" $? $USAGE || return 1
    expect_grep "breaker no state dir message" err "state directory" || return 1
    "$RESIL" breaker status svc --state-dir >/dev/null 2>err
    expect "--state-dir without a value" $? $USAGE || return 1
}

t_env_state_dir() {
    local s=$T/s13
    RESIL_STATE_DIR=$s "$RESIL" run -q --preset none --breaker envsvc --failure-threshold 1 \
        -- false
    expect "run status" $? 1 || return 1
    [ -f "$s/envsvc.cb" ] || { echo "RESIL_STATE_DIR was not used"; return 1; }
    RESIL_STATE_DIR=$s "$RESIL" breaker status envsvc --json >st.json
    expect "status via env" $? 0 || return 1
    expect "state" "$(jget st.json state)" '"open"' || return 1
    # --state-dir wins over the environment
    RESIL_STATE_DIR=$T/elsewhere "$RESIL" breaker status envsvc --state-dir "$s" >/dev/null
    expect "--state-dir over env" $? 0
}

t_concurrent_share_state() {
    local s=$T/s14 p1 p2 r1 r2
    rm -f c1 c2
    # Two processes, 2 failing attempts each, overlapping: together they
    # make the 4 failures that open the breaker.
    "${GUARD[@]}" "$RESIL" run -q --breaker shared --failure-threshold 4 --max-retries 1 \
        "${FAST[@]}" --state-dir "$s" -- ./slowfail c1 &
    p1=$!
    echo "$p1" >>"$T/bg.pids"
    "${GUARD[@]}" "$RESIL" run -q --breaker shared --failure-threshold 4 --max-retries 1 \
        "${FAST[@]}" --state-dir "$s" -- ./slowfail c2 &
    p2=$!
    echo "$p2" >>"$T/bg.pids"
    wait "$p1"; r1=$?
    wait "$p2"; r2=$?
    expect "first status" "$r1" 1 || return 1
    expect "second status" "$r2" 1 || return 1
    expect "attempts of the first" "$(count_of c1)" 2 || return 1
    expect "attempts of the second" "$(count_of c2)" 2 || return 1
    "$RESIL" breaker status shared --json --state-dir "$s" >st.json
    expect "failures of both" "$(jget st.json failed)" 4 || return 1
    expect "opened by both" "$(jget st.json state)" '"open"' || return 1
    # Now both would be refused.
    "${GUARD[@]}" "$RESIL" run -q --breaker shared --state-dir "$s" -- true
    expect "a third process is refused" $? 75
}

t_trip_from_another_process() {
    local s=$T/s15 p rc t0 t1
    rm -f c
    # A retry sleeping between attempts sees a trip made by another process.
    "${GUARD[@]}" "$RESIL" run --breaker remote --max-retries 5 --base-delay 0.5 \
        --max-delay 0.5 --jitter none --state-dir "$s" -- ./mark c 1 2>err &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_count c 1 || { echo "the command did not start"; return 1; }
    "$RESIL" breaker trip remote --state-dir "$s" >/dev/null || { echo "trip failed"; return 1; }
    t0=$(now_ms)
    wait "$p"
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 75 || return 1
    expect "attempts" "$(count_of c)" 1 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    expect_grep "message" err "circuit remote is forced open" || return 1
    expect_grep "after what" err "stopped after 1 attempt (exit 1)"
}

# A refused attempt never ran: it is not an attempt anywhere (issue 11).
# Threshold 2 and 4 retries: two attempts fail, the third is refused.
t_refusal_numbers_agree() {
    local s=$T/s40 md=$T/md40
    rm -f ev40.ndjson
    "${GUARD[@]}" "$RESIL" run --events ev40.ndjson --metrics-dir "$md" --name agree \
        --breaker agree --failure-threshold 2 --max-retries 4 "${FAST[@]}" --state-dir "$s" \
        -- false 2>err40
    expect "status" $? 75 || return 1
    expect_grep "message" err40 "stopped after 2 attempts (exit 1)" || return 1
    expect "attempt events" "$(grep -c '"outcome":"retry"' ev40.ndjson)" 2 || return 1
    "$RESIL" metrics --dir "$md" >m40 || return 1
    expect_grep "failed attempts" m40 'resil_retry_attempts_total{name="agree",result="failure"} 2' || return 1
    expect_grep "refused attempt" m40 'resil_retry_attempts_total{name="agree",result="not_permitted"} 1' || return 1
    expect_grep "breaker failures" m40 'resil_circuitbreaker_calls_total{name="agree",kind="failed"} 2' || return 1
    expect_grep "breaker refusal" m40 'resil_circuitbreaker_calls_total{name="agree",kind="not_permitted"} 1' || return 1
    if grep -q 'result="success"} [1-9]' m40; then echo "a success was counted"; return 1; fi
}

t_events_end_with_circuit_open() {
    local s=$T/s16
    rm -f ev.ndjson
    "${GUARD[@]}" "$RESIL" run -q --events ev.ndjson --breaker evs --failure-threshold 2 \
        --max-retries 5 "${FAST[@]}" --state-dir "$s" -- false
    expect "status" $? 75 || return 1
    expect "event lines" "$(wc -l <ev.ndjson | tr -d ' ')" 3 || return 1
    expect_grep "last line" <(tail -n 1 ev.ndjson) '"attempt":2,' || return 1
    expect_grep "last outcome" <(tail -n 1 ev.ndjson) '"outcome":"circuit_open"' || return 1
    # Refused before any attempt: nothing ran, nothing is logged.
    rm -f ev.ndjson
    "${GUARD[@]}" "$RESIL" run -q --events ev.ndjson --breaker evs --state-dir "$s" -- true
    expect "refused status" $? 75 || return 1
    [ ! -s ev.ndjson ] || { echo "events for a refused run:"; cat ev.ndjson; return 1; }
}

t_success_resets_consecutive() {
    local s=$T/s17
    fail_n "$s" svc 2 --failure-threshold 3 || true
    "$RESIL" run -q --breaker svc --failure-threshold 3 --state-dir "$s" -- true
    expect "success status" $? 0 || return 1
    fail_n "$s" svc 2 --failure-threshold 3 || true
    "$RESIL" breaker status svc --json --state-dir "$s" >st.json
    expect "still closed" "$(jget st.json state)" '"closed"' || return 1
    expect "consecutive" "$(jget st.json consecutive_failures)" 2
}

check "help" t_help
check "a failing command trips the breaker after N failures" t_trips_after_n_failures
check "an open breaker refuses without running the command (75)" t_open_refuses_without_running
check "status --json shows open and the time until half-open" t_status_json_open
check "after the recovery timeout a success closes it" t_recovery_closes
check "a failed trial opens it again" t_half_open_failure_reopens
check "an attempt killed by --attempt-timeout is a failure" t_attempt_timeout_is_failure
check "a command that cannot be run is ignored" t_not_run_is_ignored
check "trip, disable, reset" t_trip_disable_reset
check "list and list --json" t_list
check "a missing breaker is an error, never created" t_missing_breaker
check "a corrupt state file: clear error, reset repairs it" t_corrupt_file
check "usage errors exit $USAGE naming the option" t_usage_errors
check "RESIL_STATE_DIR is the default state dir" t_env_state_dir
check "two concurrent processes share the state" t_concurrent_share_state
check "a trip by another process stops a retry" t_trip_from_another_process
check "events end with outcome circuit_open" t_events_end_with_circuit_open
check "messages, events and metrics agree on a refusal" t_refusal_numbers_agree
check "a success resets the consecutive failures" t_success_resets_consecutive

finish
