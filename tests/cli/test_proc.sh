#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_proc.sh RESIL - black-box tests of the process runner
# (resil/proc.h) as the CLI uses it: `resil lock --cmd-timeout`, `resil json
# update --cmd-timeout`, exit 137 told apart from SIGKILL, `resil run`'s stdin
# spool (any size; a spool that cannot be written stops everything), its
# capture file in a TMPDIR that cannot take it, and --events through the
# NDJSON writer.  These tests are about real time: timeouts of 0.2-0.3 s.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 /path/to/resil" >&2
    exit 2
fi
RESIL=$1
case $RESIL in /*) ;; *) RESIL=$PWD/$RESIL ;; esac
[ -x "$RESIL" ] || { echo "$0: $RESIL is not executable" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-proc.XXXXXX") || exit 1
cleanup() {
    local p
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/bg.pids"
    fi
    chmod -R u+rwx "$T" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
. "$HERE/lib.sh"

GUARD=(timeout -k 5 60)
bg() { echo "$1" >>"$T/bg.pids"; }
HAVE_PY=0
command -v python3 >/dev/null 2>&1 && HAVE_PY=1
# Sanitizer builds reserve terabytes of address space: no `ulimit -v` there.
SANITIZED=0
if ldd "$RESIL" 2>/dev/null | grep -qE 'libasan|libtsan|libubsan'; then SANITIZED=1; fi

# ---- resil lock --cmd-timeout ------------------------------------------------------

t_lock_cmd_timeout() {
    local t0 t1 rc
    "${GUARD[@]}" "$RESIL" lock --cmd-timeout 0.3 L -- sleep 100 2>err1 &
    local first=$!
    bg $first
    sleep 0.1
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" lock --timeout 10 L -- true
    expect "the second holder" $? 0 || return 1
    t1=$(now_ms)
    wait $first
    rc=$?
    expect "a command killed by --cmd-timeout: status" $rc 124 || return 1
    expect_grep "message" err1 "'sleep' timed out after" || return 1
    expect_grep "message says how" err1 "killed by signal 15 (SIGTERM)" || return 1
    # The second waiter got the lock right after the kill, not after 100 s.
    [ $((t1 - t0)) -lt 2000 ] || { echo "the second lock took $((t1 - t0)) ms"; return 1; }
    [ $((t1 - t0)) -ge 100 ] || { echo "the second lock did not wait ($((t1 - t0)) ms)"; return 1; }
}

t_lock_kill_after() {
    local t0 t1
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" lock --cmd-timeout 0.2 --kill-after 0.2 L -- \
        sh -c 'trap "" TERM; sleep 100' 2>err
    expect "status" $? 124 || return 1
    t1=$(now_ms)
    [ $((t1 - t0)) -lt 3000 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    expect_grep "SIGKILL after the grace period" err "killed by signal 9 (SIGKILL)" || return 1
    "$RESIL" lock --timeout 0 L -- true
    expect "the lock is free" $? 0
}

t_lock_137() {
    "$RESIL" lock L -- sh -c 'exit 137' 2>err
    expect "exit 137: status" $? 137 || return 1
    expect_grep "exit 137: message" err "'sh' exited with status 137" || return 1
    "$RESIL" lock L -- sh -c 'kill -KILL $$' 2>err
    expect "SIGKILL: status" $? 137 || return 1
    expect_grep "SIGKILL: message" err "'sh' killed by signal 9 (SIGKILL)" || return 1
    "$RESIL" lock L -- sh -c 'exit 3' 2>err
    expect "exit 3: status" $? 3 || return 1
    [ ! -s err ] || { echo "a plain failure printed:"; cat err; return 1; }
}

t_lock_usage() {
    "$RESIL" lock --cmd-timeout x L -- true 2>err
    expect "bad duration: status" $? 2 || return 1
    expect_grep "bad duration: message" err "--cmd-timeout: 'x' is not a valid duration" || return 1
}

# ---- resil json update --cmd-timeout -----------------------------------------------

t_update_cmd_timeout() {
    local t0 t1 rc
    echo '{"n":1}' >d.json
    cp d.json before
    "${GUARD[@]}" "$RESIL" json update --cmd-timeout 0.3 d.json -- sleep 100 2>err1 &
    local first=$!
    bg $first
    sleep 0.1
    t0=$(now_ms)
    "${GUARD[@]}" "$RESIL" json set --timeout 10 d.json /m 2 || return 1
    t1=$(now_ms)
    wait $first
    rc=$?
    expect "status" $rc 124 || return 1
    expect_grep "message" err1 "timed out after" || return 1
    expect_grep "unchanged" err1 "d.json is unchanged" || return 1
    [ $((t1 - t0)) -lt 2000 ] || { echo "the next writer took $((t1 - t0)) ms"; return 1; }
    expect "the next writer's change" "$("$RESIL" json get d.json /m)" 2 || return 1
    expect "the killed update changed nothing" "$("$RESIL" json get d.json /n)" 1 || return 1
    "$RESIL" yaml update --cmd-timeout 0.2 y.yaml -- sleep 100 2>err
    expect "yaml: status" $? 124 || return 1
    "$RESIL" json get --cmd-timeout 1 d.json 2>err
    expect "only for update" $? 2
}

t_update_137() {
    echo '{"n":1}' >e.json
    "$RESIL" json update e.json -- sh -c 'cat >/dev/null; echo "{}"; exit 137' 2>err
    expect "exit 137: status" $? 137 || return 1
    expect_grep "exit 137: message" err "exited with status 137" || return 1
    "$RESIL" json update e.json -- sh -c 'kill -KILL $$' 2>err
    expect "SIGKILL: status" $? 137 || return 1
    expect_grep "SIGKILL: message" err "killed by signal 9 (SIGKILL)" || return 1
    expect "unchanged" "$("$RESIL" json get e.json /n)" 1
}

# ---- resil run: the stdin spool ----------------------------------------------------

t_run_large_stdin() {
    local out
    out=$(head -c 52428800 /dev/zero | "${GUARD[@]}" "$RESIL" run -- wc -c) || return 1
    expect "50 MB through wc -c" "$(echo $out)" 52428800 || return 1
    # Replayed whole to a second attempt.
    rm -f marker
    out=$(head -c 10485760 /dev/zero | "${GUARD[@]}" "$RESIL" run --max-retries 1 \
        --base-delay 0.01 -- sh -c 'wc -c; [ -e marker ] || { touch marker; exit 1; }' \
        2>/dev/null) || return 1
    expect "replayed to the retry" "$(echo $out)" 10485760 || return 1
    if [ $SANITIZED = 1 ]; then
        echo "# no ulimit -v in a sanitizer build"
        return 0
    fi
    # Not held in memory: 50 MB pass with 40 MB of address space.
    out=$( (ulimit -v 40000; head -c 52428800 /dev/zero | "$RESIL" run -- wc -c) 2>err)
    expect "50 MB with ulimit -v 40000: status" $? 0 || { cat err; return 1; }
    expect "50 MB with ulimit -v 40000" "$(echo $out)" 52428800
}

t_run_spool_error() {
    local out rc
    # A file size limit makes the spool's writes fail (EFBIG).
    out=$( (ulimit -f 1024; trap '' XFSZ; head -c 2097152 /dev/zero | "$RESIL" run -- wc -c) \
        2>err)
    rc=$?
    [ $rc -ne 0 ] || { echo "exit 0 with output '$out'"; return 1; }
    expect "status" $rc 1 || return 1
    expect_grep "names the spool file" err "resil-stdin." || return 1
    expect_grep "says why" err "File too large" || return 1
    [ -z "$out" ] || { echo "the command's output was delivered: $out"; return 1; }
}

t_run_tmpdir_missing() {
    local out
    out=$(TMPDIR=$T/no/such/dir "$RESIL" run -- echo hi </dev/null 2>err)
    expect "status" $? 1 || return 1
    expect_grep "names the directory" err "$T/no/such/dir" || return 1
    expect_grep "says what" err "does not exist" || return 1
    [ -z "$out" ] || { echo "ran anyway: $out"; return 1; }
    # Captured stdin needs the directory too.
    out=$(echo data | TMPDIR=$T/no/such/dir "$RESIL" run -- cat 2>err)
    expect "stdin: status" $? 1 || return 1
    expect_grep "stdin: names the directory" err "$T/no/such/dir" || return 1
}

t_run_tmpdir_not_writable() {
    mkdir -p ro
    chmod 0555 ro
    local runas=()
    if [ "$(id -u)" = 0 ]; then
        command -v setpriv >/dev/null || { echo "# no setpriv"; return 0; }
        runas=(setpriv --reuid 65534 --regid 65534 --clear-groups)
        chmod 0755 "$T"
    fi
    local out
    out=$(TMPDIR=$T/ro "${runas[@]}" "$RESIL" run -- echo hi </dev/null 2>err)
    expect "status" $? 1 || return 1
    expect_grep "names the directory" err "$T/ro" || return 1
    expect_grep "says what" err "not writable" || return 1
    [ -z "$out" ] || { echo "ran anyway: $out"; return 1; }
}

t_run_tmpdir_full() {
    [ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "# needs root"; return 0; }
    mkdir -p full
    if ! unshare -m true 2>/dev/null; then echo "# no mount namespace"; return 0; fi
    # A 64 KiB file system: stdout of 100 KB does not fit.
    unshare -m sh -c 'mount -t tmpfs -o size=64k tmpfs full || exit 77
        TMPDIR=$PWD/full "$0" run --max-retries 0 -- sh -c "head -c 100000 /dev/zero" \
            </dev/null >out 2>err
        echo $? >rc' "$RESIL"
    [ $? = 77 ] && { echo "# cannot mount a tmpfs"; return 0; }
    expect "status" "$(cat rc)" 1 || return 1
    expect_grep "says the capture file cannot be written" err "cannot be written" || return 1
    expect_grep "names the directory" err "$T/full" || return 1
    [ ! -s out ] || { echo "truncated output delivered"; return 1; }
}

# ---- resil run --events through the NDJSON writer -------------------------------------

t_events_torn_tail() {
    printf '{"ack":1}\n{"ack":2}\n{"torn":' >ev
    "$RESIL" run --events ev --preset none -- true || return 1
    "$RESIL" run --events ev --preset none -- true || return 1
    python3 - ev <<'EOF' || return 1
import json, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')
assert lines[-1] == b'', "no final newline"
recs = []
for l in lines[:-1]:
    if l.startswith(b'{"torn":') and l != b'{"torn":':
        sys.exit("an event was glued onto the torn record: %r" % l)
    try:
        recs.append(json.loads(l))
    except ValueError:
        if l != b'{"torn":':
            sys.exit("a line is not JSON: %r" % l)
acks = [r['ack'] for r in recs if 'ack' in r]
events = [r for r in recs if 'attempt' in r]
assert acks == [1, 2], acks
assert len(events) == 2, recs
EOF
}

t_events_concurrent() {
    local i pids=()
    for i in 1 2 3 4; do
        "${GUARD[@]}" "$RESIL" run --events cev --max-retries 9 --delay 0 --name "p$i" \
            -- false 2>/dev/null &
        pids+=($!)
        bg $!
    done
    for i in "${pids[@]}"; do wait "$i"; done
    python3 - cev <<'EOF'
import json, sys
n = {}
for l in open(sys.argv[1], 'rb').read().split(b'\n')[:-1]:
    r = json.loads(l)
    n[r['name']] = n.get(r['name'], 0) + 1
assert n == {'p1': 10, 'p2': 10, 'p3': 10, 'p4': 10}, n
EOF
}

check "lock --cmd-timeout kills the command and frees the lock at once" t_lock_cmd_timeout
check "lock --kill-after sends SIGKILL to a command that ignores SIGTERM" t_lock_kill_after
check "lock: exit 137 is not a SIGKILL" t_lock_137
check "lock: --cmd-timeout usage" t_lock_usage
check "json update --cmd-timeout kills the command and frees the lock" t_update_cmd_timeout
check "json update: exit 137 is not a SIGKILL" t_update_137
check "run: 50 MB of stdin spooled and replayed" t_run_large_stdin
check "run: a spool that cannot be written stops before the command sees partial input" \
    t_run_spool_error
check "run: TMPDIR missing is named" t_run_tmpdir_missing
check "run: TMPDIR not writable is named" t_run_tmpdir_not_writable
check "run: TMPDIR full is named" t_run_tmpdir_full
if [ $HAVE_PY = 1 ]; then
    check "run --events after a torn record keeps every event whole" t_events_torn_tail
    check "concurrent run --events interleave whole lines" t_events_concurrent
else
    skip "run --events after a torn record keeps every event whole" "no python3"
    skip "concurrent run --events interleave whole lines" "no python3"
fi

finish
