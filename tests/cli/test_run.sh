#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_run.sh RESIL - black-box tests of `resil run`.
#
# Prints "ok - NAME" / "not ok - NAME" per check (diagnostics on "# " lines)
# and ends with "N passed, M failed"; exits non-zero if anything failed.
# Helper commands are small shell scripts written to a private temp dir.
# Delays are kept at a few milliseconds; "promptly" means under 3 seconds.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-run.XXXXXX") || exit 1
# Background resil processes (started inside checks, which run in
# subshells) are listed in $T/bg.pids and killed on exit.
cleanup() {
    local p
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/bg.pids"
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

FAST=(--base-delay 0.01 --max-delay 0.02)
# Guards the test run against a hung resil (never reached when all is well).
GUARD=(timeout -k 5 60)

HAVE_PY=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null && HAVE_PY=1

# A prefix that runs a command with SIGINT at its default disposition.
if [ $HAVE_PY = 1 ]; then
    WITH_SIGINT=(python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])')
else
    WITH_SIGINT=(bash -c 'trap - INT; exec "$@"' with-sigint)
fi

# ---- helpers -----------------------------------------------------------------

. "$HERE/lib.sh"

count_of() { cat "$1" 2>/dev/null || echo 0; }

# flaky COUNTFILE FAILS [CODE]: fails FAILS times with CODE (default 1), then
# succeeds; prints "attempt N" on stdout and "err N" on stderr.
cat >flaky <<'EOF'
#!/bin/sh
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$1"
echo "attempt $n"
echo "err $n" >&2
if [ "$n" -le "$2" ]; then exit "${3:-1}"; fi
exit 0
EOF

# codes COUNTFILE C1 C2 ...: attempt N exits with CN (the last one repeated).
cat >codes <<'EOF'
#!/bin/sh
f=$1; shift
n=$(( $(cat "$f" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$f"
i=1
for c in "$@"; do
    code=$c
    [ "$i" -eq "$n" ] && break
    i=$((i + 1))
done
exit "$code"
EOF

# flakycat COUNTFILE FAILS: copies stdin to stdout and to in.N (N = attempt),
# failing FAILS times before succeeding.
cat >flakycat <<'EOF'
#!/bin/sh
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$1"
tee "in.$n"
if [ "$n" -le "$2" ]; then exit 1; fi
exit 0
EOF

# events.py FILE: validates an events file (one JSON object per line, the
# documented fields and types, attempts 1..n) and prints one line per event:
# "attempt outcome next_delay_s exit_status signal timed_out".
cat >events.py <<'EOF'
import json, re, sys
keys = {"time", "name", "attempt", "exit_status", "signal", "timed_out",
        "duration_s", "next_delay_s", "outcome"}
outcomes = {"retry", "success", "exhausted", "deadline", "permanent", "cancelled", "budget"}
stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
def fail(msg):
    print(msg)
    sys.exit(1)
data = open(sys.argv[1], "rb").read().decode()
if not data.endswith("\n"):
    fail("events file does not end with a newline")
lines = data.split("\n")[:-1]
if not lines:
    fail("events file is empty")
for i, line in enumerate(lines, 1):
    ev = json.loads(line)
    if ", " in line or ": " in line:  # JSON_COMPACT (the names used have neither)
        fail("line %d is not compact: %s" % (i, line))
    if set(ev) != keys:
        fail("line %d has keys %s" % (i, sorted(ev)))
    if not stamp.match(ev["time"]):
        fail("line %d: bad time %r" % (i, ev["time"]))
    # attempts 1..n; a final "cancelled" line may repeat the last attempt
    # (a signal during the sleep after it)
    repeat = i == len(lines) and i > 1 and ev["outcome"] == "cancelled" and ev["attempt"] == i - 1
    if ev["attempt"] != i and not repeat:
        fail("line %d: attempt %r" % (i, ev["attempt"]))
    if not isinstance(ev["name"], str) or not isinstance(ev["timed_out"], bool):
        fail("line %d: bad name/timed_out" % i)
    for k in ("exit_status", "signal"):
        if ev[k] is not None and not isinstance(ev[k], int):
            fail("line %d: bad %s" % (i, k))
    if (ev["exit_status"] is None) == (ev["signal"] is None):
        fail("line %d: exactly one of exit_status and signal must be set" % i)
    if not isinstance(ev["duration_s"], (int, float)) or ev["duration_s"] < 0:
        fail("line %d: bad duration_s" % i)
    if ev["outcome"] not in outcomes:
        fail("line %d: bad outcome %r" % (i, ev["outcome"]))
    last = i == len(lines)
    if (ev["outcome"] == "retry") == (ev["next_delay_s"] is None):
        fail("line %d: next_delay_s %r with outcome %r" % (i, ev["next_delay_s"], ev["outcome"]))
    if not last and ev["outcome"] != "retry":
        fail("line %d: outcome %r before the last line" % (i, ev["outcome"]))
    nd = "null" if ev["next_delay_s"] is None else repr(float(ev["next_delay_s"]))
    ex = "null" if ev["exit_status"] is None else ev["exit_status"]
    sg = "null" if ev["signal"] is None else ev["signal"]
    print(ev["attempt"], ev["outcome"], nd, ex, sg, str(ev["timed_out"]).lower(), ev["name"])
EOF

chmod +x flaky codes flakycat
printf '#!/bin/sh\necho never\n' >noexec
chmod 644 noexec

# ---- checks --------------------------------------------------------------------

t_version() {
    local out rc
    out=$("$RESIL" --version); rc=$?
    expect "--version status" "$rc" 0 || return 1
    expect "--version output" "$out" "resil 0.1.0" || return 1
    out=$("$RESIL" version)
    expect "version output" "$out" "resil 0.1.0"
}

t_dispatch() {
    "$RESIL" --help >help.out 2>&1; expect "--help status" $? 0 || return 1
    expect_grep "--help lists run" help.out "run" || return 1
    "$RESIL" help >/dev/null 2>&1; expect "help status" $? 0 || return 1
    "$RESIL" -h >/dev/null 2>&1; expect "-h status" $? 0 || return 1
    "$RESIL" >none.out 2>&1; expect "no sub-command status" $? 2 || return 1
    [ -s none.out ] || { echo "no message without a sub-command"; return 1; }
    "$RESIL" frobnicate >unk.out 2>&1; expect "unknown sub-command status" $? 2 || return 1
    expect_grep "unknown sub-command message" unk.out "frobnicate" || return 1
    "$RESIL" run --help >runhelp.out 2>&1; expect "run --help status" $? 0 || return 1
    expect_grep "run --help" runhelp.out "--attempt-timeout"
}

t_flaky_success() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run -q "${FAST[@]}" -- ./flaky c 2 >/dev/null 2>&1
    expect "status" $? 0 || return 1
    expect "attempts" "$(count_of c)" 3
}

t_exhausted() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run --max-retries 2 "${FAST[@]}" -- ./flaky c 99 3 >/dev/null 2>err
    expect "status" $? 3 || return 1
    expect "attempts" "$(count_of c)" 3 || return 1
    expect_grep "message" err "'flaky' attempt 1/3 failed (exit 3)" || return 1
    expect_grep "give-up message" err "gave up after 3 attempts (exhausted): exit 3"
}

t_signal_death() {
    "${GUARD[@]}" "$RESIL" run --max-retries 1 "${FAST[@]}" -- sh -c 'kill -USR1 $$' 2>err
    expect "status" $? $((128 + 10)) || return 1
    expect_grep "message" err "SIGUSR1"
}

t_stop_on() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run --stop-on 3,9 "${FAST[@]}" -- ./flaky c 99 3 >/dev/null 2>err
    expect "status" $? 3 || return 1
    expect "attempts" "$(count_of c)" 1 || return 1
    expect_grep "message" err "(permanent)"
}

t_retry_on() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run --retry-on 1-3,75 "${FAST[@]}" -- ./codes c 4 >/dev/null 2>&1
    expect "code 4: status" $? 4 || return 1
    expect "code 4: attempts" "$(count_of c)" 1 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run --retry-on=1-3,75 "${FAST[@]}" -- ./codes c 2 >/dev/null 2>&1
    expect "code 2: status" $? 2 || return 1
    expect "code 2: attempts" "$(count_of c)" 4 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run --retry-on 1-3,75 "${FAST[@]}" -- ./codes c 75 2 0 >/dev/null 2>&1
    expect "75 then 2 then 0: status" $? 0 || return 1
    expect "75 then 2 then 0: attempts" "$(count_of c)" 3
}

t_until() {
    rm -f c
    # Until exit 3: stops on the 2nd attempt; retry(1) returns the command's code.
    "${GUARD[@]}" "$RESIL" run --until 3 "${FAST[@]}" -- ./codes c 1 3 0 >/dev/null 2>&1
    expect "--until 3: status" $? 3 || return 1
    expect "--until 3: attempts" "$(count_of c)" 2 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run -u fail "${FAST[@]}" -- ./codes c 0 0 5 >/dev/null 2>&1
    expect "-u fail: status" $? 5 || return 1
    expect "-u fail: attempts" "$(count_of c)" 3 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run --until=success,7-9 "${FAST[@]}" -- ./codes c 1 8 0 >/dev/null 2>&1
    expect "--until success,7-9: status" $? 8 || return 1
    expect "--until success,7-9: attempts" "$(count_of c)" 2
}

t_while() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run --while 1-2 --max-retries 9 "${FAST[@]}" -- ./codes c 1 2 7 >/dev/null 2>&1
    expect "--while 1-2: status" $? 7 || return 1
    expect "--while 1-2: attempts" "$(count_of c)" 3 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run -w true "${FAST[@]}" -- ./codes c 0 0 4 >/dev/null 2>&1
    expect "-w true: status" $? 4 || return 1
    expect "-w true: attempts" "$(count_of c)" 3 || return 1
    "$RESIL" run --until 0 --while 1 -- true >/dev/null 2>&1
    expect "--until with --while: status" $? 2
}

t_preset_none() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run --preset none -- ./flaky c 99 >/dev/null 2>&1
    expect "status" $? 1 || return 1
    expect "attempts" "$(count_of c)" 1
}

t_preset_override_order() {
    rm -f c
    # --max-retries before --preset still wins over the preset's 10 retries.
    "${GUARD[@]}" "$RESIL" run --max-retries 1 --base-delay 0.01 --preset critical \
        --max-delay 0.02 -- ./flaky c 99 >/dev/null 2>&1
    expect "status" $? 1 || return 1
    expect "attempts" "$(count_of c)" 2 || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run --times 2 "${FAST[@]}" -- ./flaky c 99 >/dev/null 2>&1
    expect "--times 2: attempts" "$(count_of c)" 3
}

t_not_found() {
    local t0 t1
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" run "${FAST[@]}" -- resil-no-such-command-xyz arg >out 2>err
    expect "status" $? 127 || return 1
    t1=$(now_ms)
    expect "stderr lines" "$(wc -l <err | tr -d ' ')" 1 || return 1
    expect_grep "message" err "resil run: resil-no-such-command-xyz: command not found" || return 1
    [ ! -s out ] || { echo "unexpected stdout"; return 1; }
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
}

t_not_executable() {
    "${GUARD[@]}" "$RESIL" run "${FAST[@]}" -- ./noexec >out 2>err
    expect "status" $? 126 || return 1
    expect "stderr lines" "$(wc -l <err | tr -d ' ')" 1
}

t_stdout_once() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run "${FAST[@]}" -- ./flaky c 2 >out 2>err
    expect "status" $? 0 || return 1
    expect "stdout" "$(cat out)" "attempt 3" || return 1
    expect_grep "stderr has attempt 1" err "attempt 1" || return 1
    expect_grep "stderr has attempt 2" err "attempt 2" || return 1
    expect_grep "child stderr passes through" err "err 3" || return 1
    if grep -qx "attempt 3" err; then echo "successful output on stderr"; return 1; fi
}

t_stdin_replay() {
    rm -f c in.*
    printf 'a\nb\n' | "${GUARD[@]}" "$RESIL" run "${FAST[@]}" -- ./flakycat c 2 >out 2>err
    expect "status" $? 0 || return 1
    expect "attempts" "$(count_of c)" 3 || return 1
    local i
    for i in 1 2 3; do
        expect "input of attempt $i" "$(od -c <in.$i)" "$(printf 'a\nb\n' | od -c)" || return 1
    done
    expect "stdout" "$(od -c <out)" "$(printf 'a\nb\n' | od -c)"
}

t_stdin_replay_large() {
    rm -f c in.*
    seq 1 200000 >big.in # ~1.3 MB: far more than a pipe holds
    "${GUARD[@]}" "$RESIL" run "${FAST[@]}" -- ./flakycat c 1 <big.in >out 2>/dev/null
    expect "status" $? 0 || return 1
    cmp -s big.in in.1 || { echo "attempt 1 saw different input"; return 1; }
    cmp -s big.in in.2 || { echo "attempt 2 saw different input"; return 1; }
    cat big.in | "${GUARD[@]}" "$RESIL" run -q "${FAST[@]}" -- ./flakycat c 3 >out2 2>/dev/null
    expect "piped: status" $? 0 || return 1
    cmp -s big.in out || { echo "stdout differs from input"; return 1; }
    cmp -s big.in out2 || { echo "piped: stdout differs from input"; return 1; }
}

t_endless_stdin() {
    local t0 t1 rc
    t0=$(now_ms)
    yes | "${GUARD[@]}" "$RESIL" run -- true
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 0 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    # A command that never reads stdin and fails: retried, still no blocking.
    rm -f c
    t0=$(now_ms)
    yes | "${GUARD[@]}" "$RESIL" run -q "${FAST[@]}" -- ./flaky c 2 >/dev/null 2>&1
    rc=$?
    t1=$(now_ms)
    expect "flaky: status" "$rc" 0 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "flaky: took $((t1 - t0)) ms"; return 1; }
}

t_closed_stdin() {
    "${GUARD[@]}" "$RESIL" run -- cat <&- >out 2>err
    expect "status" $? 0 || return 1
    [ ! -s out ] || { echo "unexpected stdout"; return 1; }
}

t_events() {
    [ $HAVE_PY = 1 ] || return 0
    rm -f c ev
    "${GUARD[@]}" "$RESIL" run --events ev --name fetch "${FAST[@]}" -- ./flaky c 2 >/dev/null 2>&1
    expect "status" $? 0 || return 1
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    expect "lines" "$(wc -l <ev.txt | tr -d ' ')" 3 || return 1
    expect "last outcome" "$(tail -n1 ev.txt | cut -d' ' -f2,3,4,7)" "success null 0 fetch" || return 1
    expect "first outcome" "$(head -n1 ev.txt | cut -d' ' -f2,4)" "retry 1" || return 1
    # Appends; exhausted; the default name is the command's basename.
    rm -f c
    "${GUARD[@]}" "$RESIL" run --events=ev --max-retries 1 "${FAST[@]}" -- ./flaky c 99 5 >/dev/null 2>&1
    expect "exhausted: status" $? 5 || return 1
    tail -n 2 ev >ev2
    python3 events.py ev2 >ev2.txt || { cat ev2.txt; return 1; }
    expect "exhausted: last" "$(tail -n1 ev2.txt | cut -d' ' -f2,3,4,7)" "exhausted null 5 flaky" || return 1
    expect "total lines" "$(wc -l <ev | tr -d ' ')" 5 || return 1
    # A signal death: exit_status null, signal set.
    rm -f ev3
    "${GUARD[@]}" "$RESIL" run --events ev3 --preset none -- sh -c 'kill -KILL $$' 2>/dev/null
    expect "killed: status" $? 137 || return 1
    python3 events.py ev3 >ev3.txt || { cat ev3.txt; return 1; }
    expect "killed: event" "$(cut -d' ' -f2,4,5 ev3.txt)" "exhausted null 9"
}

t_events_open_failure() {
    "$RESIL" run --events "$T/no/such/dir/ev" -- true >/dev/null 2>err
    expect "status" $? 1 || return 1
    expect_grep "message names the file" err "$T/no/such/dir/ev" || return 1
    expect_grep "message has the errno text" err "No such file or directory"
}

t_attempt_timeout() {
    local t0 t1 rc
    rm -f ev
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" run --attempt-timeout 0.3 --max-retries 1 --events ev "${FAST[@]}" \
        -- sleep 30 2>err
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 124 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    expect_grep "message" err "timed out" || return 1
    if [ $HAVE_PY = 1 ]; then
        python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
        expect "events" "$(cut -d' ' -f1,2,5,6 ev.txt | tr '\n' ';')" \
            "1 retry 15 true;2 exhausted 15 true;" || return 1
    fi
}

t_attempt_timeout_grandchild() {
    local t0 t1 rc gc i state
    rm -f gc.pid
    t0=$(now_ms)
    # The inner sh execs sleep: a grandchild of resil, whose pid we record.
    "${GUARD[@]}" "$RESIL" run --attempt-timeout 0.3 --preset none \
        -- sh -c 'sh -c "echo \$\$ >gc.pid; exec sleep 30"; :' 2>/dev/null
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 124 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    gc=$(cat gc.pid 2>/dev/null)
    [ -n "$gc" ] || { echo "grandchild did not start"; return 1; }
    for i in $(seq 1 30); do
        state=$(awk '{print $3}' "/proc/$gc/stat" 2>/dev/null)
        [ -z "$state" ] || [ "$state" = Z ] && return 0
        sleep 0.1
    done
    echo "grandchild $gc still running (state $state)"
    kill -KILL "$gc" 2>/dev/null
    return 1
}

t_kill_after() {
    local t0 t1 rc
    t0=$(now_ms)
    # Ignores SIGTERM: needs the SIGKILL after --kill-after.
    "${GUARD[@]}" "$RESIL" run --attempt-timeout 0.2 --kill-after 0.3 --preset none \
        -- sh -c 'trap "" TERM; sleep 30 & wait; wait' 2>/dev/null
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 124 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
}

# Waits (up to 5 s) until FILE exists.
wait_file() {
    local i
    for i in $(seq 1 100); do
        [ -s "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

t_signal_forwarding() {
    local p t0 t1 rc
    rm -f c
    "$RESIL" run "${FAST[@]}" -- sh -c 'echo x >>c; trap "exit 42" TERM; sleep 30 & wait' \
        </dev/null 2>err &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_file c || { echo "command did not start"; return 1; }
    sleep 0.2
    t0=$(now_ms)
    kill -TERM "$p"
    wait "$p"
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 42 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    sleep 0.1
    expect "attempts" "$(wc -l <c | tr -d ' ')" 1 || return 1
    expect_grep "message" err "cancelled by SIGTERM"
}

t_signal_during_backoff() {
    local p t0 t1 rc
    rm -f c
    rm -f ev
    "$RESIL" run --base-delay 30 --max-delay 30 --jitter none --events ev -- ./flaky c 99 \
        </dev/null >/dev/null 2>err &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_file c || { echo "command did not start"; return 1; }
    sleep 0.3
    t0=$(now_ms)
    kill -TERM "$p"
    wait "$p"
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 1 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    expect "attempts" "$(count_of c)" 1 || return 1
    expect_grep "message" err "retrying in 30.00s" || return 1
    if [ $HAVE_PY = 1 ]; then
        python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
        # attempt 1: "retry" with a 30 s delay, then how the run ended
        expect "events" "$(cut -d' ' -f1-3 ev.txt | tr '\n' ';')" "1 retry 30.0;1 cancelled null;"
    fi
}

t_sigint_forwarding() {
    local p rc
    rm -f ci ci2
    # SIGINT sent by kill(1) (not the terminal) reaches the command.  Background
    # jobs of a non-interactive shell start with SIGINT ignored, and so does
    # this script when it was itself started in the background: start resil
    # with SIGINT at its default.
    "${WITH_SIGINT[@]}" "$RESIL" run "${FAST[@]}" \
        -- sh -c 'echo x >>ci; trap "exit 43" INT; sleep 30 & wait' </dev/null 2>/dev/null &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_file ci || { echo "command did not start"; return 1; }
    sleep 0.2
    kill -INT "$p"
    wait "$p"
    rc=$?
    expect "status" "$rc" 43 || return 1
    expect "attempts" "$(wc -l <ci | tr -d ' ')" 1 || return 1
    # A SIGINT ignored when resil started (nohup, background job) stays
    # ignored, in resil and in the command.
    "$RESIL" run "${FAST[@]}" -- sh -c 'echo x >>ci2; sleep 30 & wait' </dev/null 2>/dev/null &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_file ci2 || { echo "command did not start"; return 1; }
    sleep 0.2
    kill -INT "$p"
    sleep 0.3
    kill -0 "$p" 2>/dev/null || { echo "an inherited SIG_IGN for SIGINT was not honoured"; return 1; }
    kill -TERM "$p"
    wait "$p"
    rc=$?
    expect "status after SIGTERM" "$rc" 143
}

t_usage_errors() {
    local args want
    while IFS='|' read -r args want; do
        rm -f ran
        # shellcheck disable=SC2086
        "$RESIL" run $args -- sh -c 'echo >ran' >out 2>err
        expect "[$args] status" $? 2 || return 1
        expect_grep "[$args] message" err "$want" || return 1
        expect_grep "[$args] prefix" err "resil run: " || return 1
        [ ! -e ran ] || { echo "[$args] the command ran"; return 1; }
    done <<'EOF'
--max-retries x|--max-retries
--max-retries -1|--max-retries
--times 1.5|--times
--base-delay -1|--base-delay
--base-delay 5 --max-delay 1|base_delay_s
--max-delay 1 --base-delay 5|--base-delay
--exp-base 0.5|exponential_base
--jitter bogus|--jitter
--retry-on 1-x|1-x
--retry-on 1-x|--retry-on
--stop-on 300|--stop-on
--until maybe|--until
--delay 1,,2|--delay
--preset bogus|bogus
--seed -3|--seed
--attempt-timeout soon|--attempt-timeout
--no-such-option|--no-such-option
EOF
    "$RESIL" run >out 2>err
    expect "missing command: status" $? 2 || return 1
    expect_grep "missing command: message" err "missing command" || return 1
    "$RESIL" run --preset none >out 2>err
    expect "missing command after options: status" $? 2 || return 1
    "$RESIL" run --max-retries >out 2>err
    expect "missing argument: status" $? 2 || return 1
    expect_grep "missing argument: message" err "--max-retries"
}

t_seed() {
    [ $HAVE_PY = 1 ] || return 0
    local a b c3
    rm -f e1 e2 e3 c
    "${GUARD[@]}" "$RESIL" run --seed 42 --max-retries 4 --base-delay 0.01 --max-delay 0.05 \
        --events e1 -- false 2>/dev/null
    "${GUARD[@]}" "$RESIL" run --max-retries 4 --base-delay 0.01 --max-delay 0.05 \
        --events e2 --seed=42 -- false 2>/dev/null
    "${GUARD[@]}" "$RESIL" run --seed 43 --max-retries 4 --base-delay 0.01 --max-delay 0.05 \
        --events e3 -- false 2>/dev/null
    a=$(python3 events.py e1 | cut -d' ' -f3 | tr '\n' ' ') || return 1
    b=$(python3 events.py e2 | cut -d' ' -f3 | tr '\n' ' ') || return 1
    c3=$(python3 events.py e3 | cut -d' ' -f3 | tr '\n' ' ') || return 1
    expect "same seed, same delays" "$a" "$b" || return 1
    [ "$a" != "$c3" ] || { echo "seeds 42 and 43 gave the same delays: $a"; return 1; }
}

t_deadline() {
    [ $HAVE_PY = 1 ] || return 0
    local t0 t1 rc
    rm -f ev
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" run --deadline 0.5 --forever --base-delay 0.1 --max-delay 0.1 \
        --jitter none --events ev -- false 2>err
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 1 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    expect "last outcome" "$(tail -n1 ev.txt | cut -d' ' -f2)" "deadline" || return 1
    local n
    n=$(wc -l <ev.txt | tr -d ' ')
    # 5 attempts 0.1 s apart fit in 0.5 s; fewer on a loaded machine.
    [ "$n" -ge 1 ] && [ "$n" -le 6 ] || { echo "$n attempts"; return 1; }
    expect_grep "message" err "(deadline)"
}

# --deadline also ends an attempt that is still running when it comes.
t_deadline_cuts_attempt() {
    [ $HAVE_PY = 1 ] || return 0
    local t0 t1 rc
    rm -f ev
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" run --deadline 0.5 --forever --events ev -- sleep 30 2>err
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 124 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    expect "attempts" "$(wc -l <ev.txt | tr -d ' ')" 1 || return 1
    expect "outcome" "$(cut -d' ' -f2 ev.txt)" "deadline" || return 1
    expect_grep "message" err "(deadline)"
}

# Output that cannot be delivered is never a silent success.
t_output_errors() {
    local rc
    "${GUARD[@]}" "$RESIL" run -- echo hi >/dev/full 2>err
    rc=$?
    expect "status with stdout on /dev/full" "$rc" 1 || return 1
    expect_grep "message" err "cannot write the command's output" || return 1
    "${GUARD[@]}" "$RESIL" run -- sh -c 'seq 1 200000' 2>err | head -n 1 >/dev/null
    expect "status when the reader goes away" "${PIPESTATUS[0]}" 141
}

# After a timeout, what is left of the command's group gets SIGKILL at the
# end of the grace period, even when the command itself exited at once.
t_timeout_kills_leftovers() {
    local rc
    rm -f alive
    "${GUARD[@]}" "$RESIL" run --attempt-timeout 0.3 --kill-after 0.3 --max-retries 0 -- \
        sh -c '(trap "" TERM; sleep 1.5; touch alive) & sleep 100' </dev/null 2>/dev/null
    rc=$?
    expect "status" "$rc" 124 || return 1
    sleep 1.8
    [ ! -e alive ] || { echo "a child of the timed-out command survived"; return 1; }
}

# A stopped command still gets a forwarded SIGTERM (with SIGCONT).
t_signal_to_stopped_command() {
    local p t0 t1 rc
    rm -f c
    "$RESIL" run "${FAST[@]}" -- sh -c 'echo x >>c; kill -STOP $$; sleep 30' </dev/null 2>err &
    p=$!
    echo "$p" >>"$T/bg.pids"
    wait_file c || { echo "command did not start"; return 1; }
    sleep 0.3
    t0=$(now_ms)
    kill -TERM "$p"
    wait "$p"
    rc=$?
    t1=$(now_ms)
    expect "status" "$rc" 143 || return 1
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
}

# Numbers: exponents are fine, blanks and signs are not.
t_number_syntax() {
    "${GUARD[@]}" "$RESIL" run --base-delay 1e-3 --max-delay 2e-3 -- true 2>err
    expect "--base-delay 1e-3" $? 0 || { cat err; return 1; }
    "${GUARD[@]}" "$RESIL" run --retry-on ' 1' -- true 2>err
    expect "--retry-on ' 1'" $? 2 || return 1
    "${GUARD[@]}" "$RESIL" run --base-delay -1 -- true 2>err
    expect "--base-delay -1" $? 2 || return 1
    "${GUARD[@]}" "$RESIL" run --deadline inf -- true 2>err
    expect "--deadline inf" $? 2
}

# A name that is not UTF-8 still gives valid JSON events.
t_events_non_utf8_name() {
    [ $HAVE_PY = 1 ] || return 0
    rm -f ev
    "${GUARD[@]}" "$RESIL" run --name $'caf\xe9' --events ev -- true 2>err
    expect "status" $? 0 || return 1
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    python3 -c 'import json,sys; n=json.loads(open("ev").readline())["name"]; sys.exit(n != "caf?")' ||
        { echo "name: $(head -c 200 ev)"; return 1; }
}

t_delay_list() {
    [ $HAVE_PY = 1 ] || return 0
    rm -f ev
    "${GUARD[@]}" "$RESIL" run --delay 0.01,0.03,0.02 --max-retries 4 --events ev -- false \
        2>/dev/null
    expect "status" $? 1 || return 1
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    expect "delays" "$(cut -d' ' -f3 ev.txt | tr '\n' ' ')" "0.01 0.03 0.02 0.02 null "
    rm -f ev
    "${GUARD[@]}" "$RESIL" run -d 0.02 -t 2 --events ev -- false 2>/dev/null
    python3 events.py ev >ev.txt || { cat ev.txt; return 1; }
    expect "-d 0.02" "$(cut -d' ' -f3 ev.txt | tr '\n' ' ')" "0.02 0.02 null "
}

t_message_and_quiet() {
    rm -f c
    "${GUARD[@]}" "$RESIL" run -m "the flaky thing" "${FAST[@]}" -- ./flaky c 1 >/dev/null 2>err
    expect "status" $? 0 || return 1
    expect_grep "-m text" err "'the flaky thing' attempt 1/4 failed (exit 1)" || return 1
    rm -f c
    "${GUARD[@]}" "$RESIL" run --quiet --max-retries 1 "${FAST[@]}" -- sh -c 'exit 6' 2>err
    expect "quiet status" $? 6 || return 1
    [ ! -s err ] || { echo "--quiet printed:"; cat err; return 1; }
}

check "version" t_version
check "dispatch and help" t_dispatch
check "flaky command succeeds after retries" t_flaky_success
check "exhausted returns the last exit code" t_exhausted
check "signal death gives 128+N" t_signal_death
check "--stop-on stops after one attempt" t_stop_on
check "--retry-on with ranges" t_retry_on
check "--until criteria" t_until
check "--while criteria" t_while
check "--preset none makes one attempt" t_preset_none
check "options override the preset in any order" t_preset_override_order
check "command not found gives 127 at once" t_not_found
check "non-executable gives 126" t_not_executable
check "stdout carries the successful attempt once" t_stdout_once
check "stdin is replayed to every attempt" t_stdin_replay
check "large stdin is replayed" t_stdin_replay_large
check "endless stdin does not block" t_endless_stdin
check "closed stdin gives /dev/null" t_closed_stdin
if [ $HAVE_PY = 1 ]; then
    check "--events writes one JSON line per attempt" t_events
else
    skip "--events writes one JSON line per attempt" "no python3"
fi
check "--events open failure exits 1" t_events_open_failure
check "--attempt-timeout kills a hung command" t_attempt_timeout
check "--attempt-timeout kills grandchildren" t_attempt_timeout_grandchild
check "--kill-after sends SIGKILL" t_kill_after
check "SIGTERM is forwarded and stops retrying" t_signal_forwarding
check "SIGTERM during back-off exits promptly" t_signal_during_backoff
check "SIGINT from kill(1)" t_sigint_forwarding
check "usage errors exit 2 naming the option" t_usage_errors
check "output that cannot be written is not a success" t_output_errors
check "a timeout kills what is left of the command's group" t_timeout_kills_leftovers
check "SIGTERM reaches a stopped command" t_signal_to_stopped_command
check "number syntax of options" t_number_syntax
if [ $HAVE_PY = 1 ]; then
    check "--seed gives reproducible delays" t_seed
    check "--deadline stops with outcome deadline" t_deadline
    check "--deadline ends a running attempt" t_deadline_cuts_attempt
    check "events with a non-UTF-8 name" t_events_non_utf8_name
    check "--delay list is used in turn" t_delay_list
else
    skip "--seed gives reproducible delays" "no python3"
    skip "--deadline stops with outcome deadline" "no python3"
    skip "--delay list is used in turn" "no python3"
fi
check "-m and --quiet" t_message_and_quiet

finish
