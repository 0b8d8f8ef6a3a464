#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_files.sh RESIL - black-box tests of `resil json`, `resil yaml`,
# `resil ndjson` and `resil lock`.
#
# Prints "ok - NAME" / "not ok - NAME" per check (diagnostics on "# " lines)
# and ends with "N passed, M failed"; exits non-zero if anything failed.
# Everything happens in a private temp dir; helper filters are small shell
# scripts written there.  Lock waits are a few hundred milliseconds; "within
# ~1 s" is checked against a 2.5 s bound to stay robust on loaded machines.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-files.XXXXXX") || exit 1
# Background processes (started inside checks, which run in subshells) are
# listed in $T/bg.pids and killed on exit.
cleanup() {
    local p
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/bg.pids"
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

# Guards the test run against a hung resil (never reached when all is well).
GUARD=(timeout -k 5 60)

HAVE_PY=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null && HAVE_PY=1
HAVE_JQ=0
command -v jq >/dev/null 2>&1 && HAVE_JQ=1

# ---- helpers -----------------------------------------------------------------

. "$HERE/lib.sh"

# expect_same WHAT FILE1 FILE2 (byte for byte)
expect_same() {
    if ! cmp -s "$2" "$3"; then
        echo "$1: $2 and $3 differ:"
        diff "$2" "$3" | head -20 | sed 's/^/  | /'
        return 1
    fi
}

bg() { echo "$1" >>"$T/bg.pids"; }

# inc: a JSON filter: reads {"n": N} (or null) on stdin, prints {"n": N+1}.
cat >inc <<'EOF'
#!/bin/sh
exec awk 'BEGIN { n = 0 }
{ if (match($0, /"n": *[0-9]+/)) { s = substr($0, RSTART, RLENGTH); sub(/.*: */, "", s); n = s + 0 } }
END { printf "{\"n\": %d}\n", n + 1 }'
EOF
# inc.py: the same with python3, on any document: sets .count += 1.
cat >inc.py <<'EOF'
import json, sys
d = json.load(sys.stdin)
if d is None:
    d = {}
d["count"] = d.get("count", 0) + 1
json.dump(d, sys.stdout)
EOF
chmod +x inc

printf '{\n  "a": {"b": [10, 20, 30], "c~d": 1, "e/f": 2, "": 3},\n  "s": "hello world",\n  "t": true,\n  "x": null\n}\n' >doc.src

# ---- dispatch ------------------------------------------------------------------

t_help() {
    local c
    for c in json yaml ndjson lock; do
        "$RESIL" "$c" --help >h.out 2>&1; expect "$c --help status" $? 0 || return 1
        expect_grep "$c --help" h.out "usage: resil $c" || return 1
        "$RESIL" help "$c" >h.out 2>&1; expect "help $c status" $? 0 || return 1
        "$RESIL" --help >h.out 2>&1
        expect_grep "--help lists $c" h.out "  $c " || return 1
    done
}

t_usage_errors() {
    local args
    while IFS= read -r args; do
        eval "set -- $args"
        "$RESIL" "$@" >u.out 2>u.err </dev/null
        expect "'$args' status" $? 2 || return 1
        [ -s u.err ] || { echo "'$args': no message"; return 1; }
    done <<'EOF'
json
json frob x.json
json get
json get a.json /a extra
json set a.json /a
json del a.json
json check
json update a.json
json get --bogus a.json
json get a.json --timeout
json get a.json --timeout -1
json get a.json --timeout abc
json set a.json /a 1 --durability fast
json set a.json /a 1 --raw
json get a.json abc
json get a.json /a~2
json del a.json ''
yaml
yaml update --json a.yaml
ndjson
ndjson frob x
ndjson cat
ndjson cat a b
ndjson cat --sync x
ndjson append x --strict
lock
lock p
lock --timeout x p true
lock --bogus p true
EOF
    "$RESIL" json frob x.json 2>u.err
    expect_grep "unknown action named" u.err "frob" || return 1
    "$RESIL" json get --bogus a.json 2>u.err
    expect_grep "unknown option named" u.err "--bogus" || return 1
    "$RESIL" json set a.json /a 1 --durability fast 2>u.err
    expect_grep "bad durability named" u.err "fast" || return 1
    "$RESIL" json get a.json abc 2>u.err
    expect_grep "bad pointer named" u.err "abc"
}

# ---- json ------------------------------------------------------------------------

t_json_get() {
    cp doc.src d.json
    "$RESIL" json get d.json >out; expect "whole: status" $? 0 || return 1
    if [ $HAVE_PY = 1 ]; then
        python3 -c 'import json,sys; a=json.load(open("out")); b=json.load(open("d.json")); sys.exit(a != b)' ||
            { echo "whole document differs"; return 1; }
    fi
    expect "2-space indent" "$(sed -n 2p out)" '  "a": {' || return 1
    expect "\"\" is the whole doc" "$("$RESIL" json get d.json '')" "$(cat out)" || return 1
    expect "array element" "$("$RESIL" json get d.json /a/b/1)" 20 || return 1
    expect "~0 escape" "$("$RESIL" json get d.json '/a/c~0d')" 1 || return 1
    expect "~1 escape" "$("$RESIL" json get d.json '/a/e~1f')" 2 || return 1
    expect "empty key" "$("$RESIL" json get d.json /a/)" 3 || return 1
    expect "string quoted" "$("$RESIL" json get d.json /s)" '"hello world"' || return 1
    expect "--raw string" "$("$RESIL" json get --raw d.json /s)" 'hello world' || return 1
    expect "--raw non-string" "$("$RESIL" json get d.json /t --raw)" 'true' || return 1
    expect "null" "$("$RESIL" json get d.json /x)" 'null' || return 1
    expect "sub-object" "$("$RESIL" json get d.json /a/b | tr -d ' \n')" '[10,20,30]' || return 1
    local p
    for p in /nope /a/b/3 /a/b/01 /a/b/- /s/0 /x/y; do
        "$RESIL" json get d.json "$p" >out 2>err
        expect "$p: status" $? 1 || return 1
        expect_grep "$p: message" err "no value at $p in d.json" || return 1
        [ ! -s out ] || { echo "$p: unexpected stdout"; return 1; }
    done
}

t_json_bad_file() {
    printf '{\n  "a": 1,\n  "b": \n}\n' >bad.json
    "$RESIL" json get bad.json >out 2>err
    expect "get status" $? 1 || return 1
    expect_grep "get message" err "bad.json:4:1:" || return 1
    "$RESIL" json check bad.json >out 2>err
    expect "check status" $? 1 || return 1
    expect_grep "check message" err "bad.json:4:1:" || return 1
    [ ! -s out ] || { echo "check printed on stdout"; return 1; }
    cp bad.json bad.orig
    "$RESIL" json set bad.json /a 2 2>err
    expect "set on a bad file: status" $? 1 || return 1
    expect_grep "set message" err "bad.json:4:1:" || return 1
    expect_same "a bad file is not overwritten" bad.json bad.orig
}

t_json_missing_file() {
    "$RESIL" json get nope.json 2>err; expect "get status" $? 1 || return 1
    expect_grep "get message" err "nope.json" || return 1
    "$RESIL" json check nope.json 2>err; expect "check status" $? 1 || return 1
    expect_grep "check message" err "nope.json" || return 1
    "$RESIL" json set nope.json /a 1 2>err; expect "set /a status" $? 1 || return 1
    expect_grep "set /a message" err "nope.json" || return 1
    [ ! -e nope.json ] || { echo "set /a created the file"; return 1; }
    "$RESIL" json del nope.json /a 2>err; expect "del status" $? 1 || return 1
    expect_grep "del message" err "no value at /a in nope.json" || return 1
    "$RESIL" json set nope.json '' '{"created": [1]}'; expect "set '' status" $? 0 || return 1
    expect "created" "$("$RESIL" json get nope.json /created/0)" 1
}

t_json_check_ok() {
    cp doc.src d.json
    "$RESIL" json check d.json >out 2>&1
    expect "status" $? 0 || return 1
    [ ! -s out ] || { echo "check printed:"; cat out; return 1; }
}

t_json_set() {
    cp doc.src d.json
    "$RESIL" json set d.json /new '"v"' || return 1
    expect "new member" "$("$RESIL" json get d.json /new)" '"v"' || return 1
    "$RESIL" json set d.json /a/b/0 '{"k": [true]}' || return 1
    expect "replace element" "$("$RESIL" json get d.json /a/b/0/k/0)" true || return 1
    "$RESIL" json set d.json /a/b/- -7 || return 1
    expect "append with -" "$("$RESIL" json get d.json /a/b/3)" -7 || return 1
    "$RESIL" json set d.json '/a/c~0d' 1.5 || return 1
    expect "escaped key" "$("$RESIL" json get d.json '/a/c~0d')" 1.5 || return 1
    "$RESIL" json set --durability none --timeout 2 d.json /s null || return 1
    expect "options" "$("$RESIL" json get d.json /s)" null || return 1
    "$RESIL" json check d.json || return 1
    ls -a | grep -F '.d.json.resil-tmp.' && { echo "temp files left"; return 1; }
    cp d.json before
    "$RESIL" json set d.json /no/such 1 2>err; expect "missing parent: status" $? 1 || return 1
    expect_grep "missing parent: message" err "/no" || return 1
    "$RESIL" json set d.json /t/x 1 2>err; expect "scalar parent: status" $? 1 || return 1
    expect_grep "scalar parent: message" err "/t" || return 1
    "$RESIL" json set d.json /a/b/9 1 2>err; expect "index past end: status" $? 1 || return 1
    "$RESIL" json set d.json /a/b/x 1 2>err; expect "bad index: status" $? 1 || return 1
    "$RESIL" json set d.json /a '{"unterminated' 2>err; expect "bad VALUE: status" $? 2 || return 1
    expect_grep "bad VALUE: message names it" err "{\"unterminated" || return 1
    "$RESIL" json set d.json /a bare 2>err; expect "bare word VALUE: status" $? 2 || return 1
    expect_same "failed sets leave the file unchanged" d.json before
}

t_json_del() {
    cp doc.src d.json
    "$RESIL" json del d.json /a/b/1 || return 1
    expect "array element removed" "$("$RESIL" json get d.json /a/b | tr -d ' \n')" '[10,30]' || return 1
    "$RESIL" json del d.json '/a/e~1f' || return 1
    "$RESIL" json get d.json '/a/e~1f' 2>/dev/null && { echo "member still there"; return 1; }
    cp d.json before
    "$RESIL" json del d.json /nope 2>err; expect "missing: status" $? 1 || return 1
    expect_grep "missing: message" err "no value at /nope in d.json" || return 1
    "$RESIL" json del d.json /a/b/- 2>err; expect "del -: status" $? 1 || return 1
    expect_same "failed dels leave the file unchanged" d.json before
}

t_json_update_sh() {
    rm -f u.json
    "$RESIL" json update u.json -- ./inc || return 1
    expect "created from null" "$("$RESIL" json get u.json /n)" 1 || return 1
    "$RESIL" json update u.json ./inc || return 1
    expect "without --" "$("$RESIL" json get u.json /n)" 2 || return 1
    "$RESIL" json update u.json -- sh -c 'cat >seen; echo "[1, 2]"' || return 1
    expect "the document on stdin" "$(tr -d ' \n' <seen)" '{"n":2}' || return 1
    expect "replaced" "$("$RESIL" json get u.json | tr -d ' \n')" '[1,2]'
}

t_json_update_py() {
    rm -f u.json
    "$RESIL" json update u.json -- python3 inc.py || return 1
    "$RESIL" json update u.json -- python3 inc.py || return 1
    expect "count" "$("$RESIL" json get u.json /count)" 2
}

t_json_update_jq() {
    echo '{"count": 41, "keep": "me"}' >j.json
    "$RESIL" json update j.json -- jq '.count += 1' || return 1
    expect "count" "$("$RESIL" json get j.json /count)" 42 || return 1
    expect "other keys" "$("$RESIL" json get --raw j.json /keep)" me || return 1
    cp j.json before
    "$RESIL" json update j.json -- jq '.count +' 2>err
    [ $? -ne 0 ] || { echo "a jq syntax error succeeded"; return 1; }
    expect_same "jq failure leaves the file unchanged" j.json before
}

t_json_update_failures() {
    cp doc.src d.json
    cp d.json before
    "$RESIL" json update d.json -- sh -c 'cat >/dev/null; echo "{}"; exit 3' 2>err
    expect "failing CMD: status" $? 3 || return 1
    expect_grep "failing CMD: message names the file" err "d.json is unchanged" || return 1
    expect_same "failing CMD: unchanged" d.json before || return 1
    "$RESIL" json update d.json -- sh -c 'kill -TERM $$' 2>err
    expect "killed CMD: status" $? 143 || return 1
    expect_same "killed CMD: unchanged" d.json before || return 1
    "$RESIL" json update d.json -- sh -c 'echo "{oops"' 2>err
    expect "bad output: status" $? 1 || return 1
    expect_grep "bad output: message" err "not valid JSON" || return 1
    expect_same "bad output: unchanged" d.json before || return 1
    "$RESIL" json update d.json -- true 2>err
    expect "no output: status" $? 1 || return 1
    expect_same "no output: unchanged" d.json before || return 1
    "$RESIL" json update d.json -- resil-no-such-command-xyz 2>err
    expect "not found: status" $? 127 || return 1
    expect_grep "not found: message" err "resil-no-such-command-xyz" || return 1
    expect_same "not found: unchanged" d.json before
}

t_json_update_big() {
    # ~3 MB through the command: more than any pipe buffer, both ways.
    awk 'BEGIN { printf "["; for (i = 0; i < 300000; i++) printf "%s%d", (i ? "," : ""), i; print "]" }' >big.json
    "${GUARD[@]}" "$RESIL" json update --durability none big.json -- cat || return 1
    expect "last element" "$("$RESIL" json get big.json /299999)" 299999
}

t_json_concurrent() {
    rm -f c.json
    local i pids=()
    for i in 1 2 3 4; do
        (for _ in $(seq 50); do
            "$RESIL" json update --timeout 30 --durability none c.json -- ./inc || exit 1
        done) &
        pids+=($!)
        bg $!
    done
    local fails=0
    for i in "${pids[@]}"; do wait "$i" || fails=$((fails + 1)); done
    expect "failed loops" "$fails" 0 || return 1
    expect "count" "$("$RESIL" json get c.json /n)" 200
}

t_json_lock_timeout() {
    echo '{}' >held.json
    "$RESIL" lock held.json -- sleep 2 &
    bg $!
    sleep 0.4
    local t0 t1
    t0=$(now_ms)
    "$RESIL" json set --timeout 0.3 held.json /a 1 2>err
    expect "status" $? 1 || return 1
    t1=$(now_ms)
    expect_grep "message names the lock" err "held.json.lock" || return 1
    [ $((t1 - t0)) -lt 2500 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    expect "unchanged" "$(tr -d ' \n' <held.json)" '{}' || return 1
    # --timeout 0: one try, no wait, as lock_timeout_s = 0 in C.
    "$RESIL" lock held.ndjson -- sleep 2 &
    bg $!
    sleep 0.4
    t0=$(now_ms)
    "$RESIL" json set --timeout 0 held.json /a 1 2>err
    expect "json --timeout 0: status" $? 1 || return 1
    "$RESIL" ndjson append --timeout 0 held.ndjson '{"a":1}' 2>err
    expect "ndjson --timeout 0: status" $? 1 || return 1
    t1=$(now_ms)
    expect_grep "ndjson names the lock" err "held.ndjson.lock" || return 1
    [ $((t1 - t0)) -lt 1500 ] || { echo "--timeout 0 took $((t1 - t0)) ms"; return 1; }
    [ ! -s held.ndjson ] || { echo "appended while locked"; return 1; }
    expect "unchanged" "$(tr -d ' \n' <held.json)" '{}'
}

# ---- yaml ------------------------------------------------------------------------

t_yaml() {
    printf 'name: bob\nlist:\n  - 1\n  - two\nflag: "yes"\n' >y.yaml
    "$RESIL" yaml get y.yaml >out || return 1
    expect_grep "prints YAML" out "name: bob" || return 1
    expect "pointer" "$("$RESIL" yaml get --raw y.yaml /list/1)" two || return 1
    expect "--json" "$("$RESIL" yaml get --json y.yaml /list | tr -d ' \n')" '[1,"two"]' || return 1
    expect "quoted string stays a string" "$("$RESIL" yaml get --json y.yaml /flag)" '"yes"' || return 1
    "$RESIL" yaml set y.yaml /list/- '{"k": "v"}' || return 1
    expect "set" "$("$RESIL" yaml get --raw y.yaml /list/2/k)" v || return 1
    "$RESIL" yaml del y.yaml /name || return 1
    "$RESIL" yaml get y.yaml /name 2>err; expect "del" $? 1 || return 1
    expect_grep "del message" err "no value at /name in y.yaml" || return 1
    "$RESIL" yaml update y.yaml -- sh -c 'cat; echo "added: 5"' || return 1
    expect "update (YAML both ways)" "$("$RESIL" yaml get y.yaml /added)" 5 || return 1
    if [ $HAVE_PY = 1 ]; then
        "$RESIL" yaml update --json y.yaml -- python3 inc.py || return 1
        expect "update --json" "$("$RESIL" yaml get y.yaml /count)" 1 || return 1
    fi
    "$RESIL" yaml check y.yaml || return 1
    cp y.yaml before
    "$RESIL" yaml update y.yaml -- sh -c 'printf "a: [1,\n"' 2>err
    expect "bad output: status" $? 1 || return 1
    expect_same "bad output: unchanged" y.yaml before || return 1
    "$RESIL" yaml set y.yaml /x 'not json' 2>err
    expect "bad VALUE: status" $? 2 || return 1
    printf 'a: 1\nb: [1, 2\nc: 3\n' >bad.yaml
    "$RESIL" yaml check bad.yaml 2>err
    expect "bad file: status" $? 1 || return 1
    grep -qE 'bad\.yaml:[0-9]+:[0-9]+: ' err || { echo "no FILE:LINE:COLUMN in:"; cat err; return 1; }
    "$RESIL" yaml get bad.yaml 2>err
    expect "get bad file: status" $? 1 || return 1
    grep -qE 'bad\.yaml:[0-9]+:[0-9]+: ' err || { echo "get: no FILE:LINE:COLUMN in:"; cat err; return 1; }
    rm -f new.yaml
    "$RESIL" yaml set new.yaml '' '{"a": {"b": "c"}}' || return 1
    expect "created" "$("$RESIL" yaml get --raw new.yaml /a/b)" c
}

# ---- ndjson ------------------------------------------------------------------------

t_ndjson_append() {
    rm -f l.ndjson
    "$RESIL" ndjson append l.ndjson '{"one": 1}' || return 1
    "$RESIL" ndjson append --sync l.ndjson '[1, 2]' || return 1
    expect "compact lines" "$(cat l.ndjson)" "$(printf '{"one":1}\n[1,2]')" || return 1
    "$RESIL" ndjson append l.ndjson '{"a":' 2>err
    expect "bad RECORD: status" $? 2 || return 1
    expect_grep "bad RECORD: message" err '{"a":' || return 1
    expect "bad RECORD not appended" "$(wc -l <l.ndjson | tr -d ' ')" 2
}

t_ndjson_stdin() {
    rm -f s.ndjson
    seq 1000 | awk '{ printf "{\"i\": %d, \"s\": \"line %d\"}\n", $1, $1 }' >in.txt
    "${GUARD[@]}" "$RESIL" ndjson append s.ndjson <in.txt || return 1
    expect "lines" "$(wc -l <s.ndjson | tr -d ' ')" 1000 || return 1
    "$RESIL" ndjson check s.ndjson >out || { cat out; return 1; }
    expect "check" "$(cat out)" "1000 records, 0 bad lines, 0 torn bytes" || return 1
    expect "last" "$("$RESIL" ndjson cat s.ndjson | tail -n 1)" '{"i":1000,"s":"line 1000"}' || return 1
    # blank lines are skipped; a bad line stops with its number
    printf '{"a":1}\n\n   \n{"b":2}\nnot json\n{"c":3}\n' | "$RESIL" ndjson append b.ndjson 2>err
    expect "bad line: status" $? 1 || return 1
    expect_grep "bad line: its number" err "stdin:5:" || return 1
    expect "records before it were appended" "$(cat b.ndjson)" "$(printf '{"a":1}\n{"b":2}')" || return 1
    # a last line without a newline is a record too
    printf '{"z":26}' | "$RESIL" ndjson append z.ndjson || return 1
    expect "unterminated last line" "$(cat z.ndjson)" '{"z":26}'
}

t_ndjson_concurrent() {
    rm -f cc.ndjson
    local i pids=()
    for i in 1 2 3 4; do
        seq 250 | awk -v w=$i '{ printf "{\"w\": %d, \"i\": %d}\n", w, $1 }' |
            "$RESIL" ndjson append --timeout 30 cc.ndjson &
        pids+=($!)
        bg $!
    done
    local fails=0
    for i in "${pids[@]}"; do wait "$i" || fails=$((fails + 1)); done
    expect "failed appenders" "$fails" 0 || return 1
    "$RESIL" ndjson check cc.ndjson >out || { cat out; return 1; }
    expect "check" "$(cat out)" "1000 records, 0 bad lines, 0 torn bytes"
}

t_ndjson_torn() {
    printf '{"a":1}\n{"b":2}\n{"c":' >t.ndjson
    "$RESIL" ndjson cat t.ndjson >out 2>err
    expect "cat status" $? 0 || return 1
    expect "cat records" "$(cat out)" "$(printf '{"a":1}\n{"b":2}')" || return 1
    expect_grep "cat reports the torn tail" err "torn" || return 1
    "$RESIL" ndjson cat --strict t.ndjson >out 2>err
    expect "cat --strict status" $? 1 || return 1
    expect_grep "cat --strict message" err "t.ndjson" || return 1
    "$RESIL" ndjson check t.ndjson >out 2>err
    expect "check status" $? 1 || return 1
    expect "check summary" "$(cat out)" "2 records, 0 bad lines, 5 torn bytes" || return 1
    "$RESIL" ndjson repair t.ndjson >out 2>err
    expect "repair keeps a tail resil did not write" $? 1 || return 1
    "$RESIL" ndjson repair --force t.ndjson >out 2>err
    expect "repair --force status" $? 0 || return 1
    expect_grep "repair reports the cut" out "5 bytes" || return 1
    "$RESIL" ndjson check t.ndjson >out 2>err
    expect "check after repair" $? 0 || return 1
    expect "summary after repair" "$(cat out)" "2 records, 0 bad lines, 0 torn bytes" || return 1
    "$RESIL" ndjson repair t.ndjson >out || return 1
    expect_grep "second repair" out "nothing cut"
}

t_ndjson_bad_lines() {
    printf '{"a":1}\nnot json\n{"b":2}\n' >bl.ndjson
    "$RESIL" ndjson cat bl.ndjson >out 2>err
    expect "cat status" $? 0 || return 1
    expect "cat skips the bad line" "$(cat out)" "$(printf '{"a":1}\n{"b":2}')" || return 1
    expect_grep "cat reports its number" err "bl.ndjson:2:" || return 1
    "$RESIL" ndjson cat --strict bl.ndjson >out 2>err
    expect "cat --strict status" $? 1 || return 1
    expect_grep "cat --strict message" err "bl.ndjson:2:" || return 1
    "$RESIL" ndjson check bl.ndjson >out 2>err
    expect "check status" $? 1 || return 1
    expect "check summary" "$(cat out)" "2 records, 1 bad line, 0 torn bytes" || return 1
    "$RESIL" ndjson cat nope.ndjson 2>err
    expect "missing file: status" $? 1 || return 1
    expect_grep "missing file: message" err "nope.ndjson"
}

# ---- lock ------------------------------------------------------------------------

t_lock_status() {
    "$RESIL" lock p -- sh -c 'exit 7'
    expect "exit status" $? 7 || return 1
    "$RESIL" lock p sh -c 'exit 0'
    expect "without --" $? 0 || return 1
    [ -e p.lock ] || { echo "no sidecar p.lock"; return 1; }
    "$RESIL" lock p -- resil-no-such-command-xyz 2>err
    expect "not found" $? 127
}

t_lock_timeout() {
    "$RESIL" lock p -- sleep 2 &
    bg $!
    sleep 0.4
    local t0 t1
    t0=$(now_ms)
    "$RESIL" lock --timeout 0.3 p -- echo never >out 2>err
    expect "status" $? 1 || return 1
    t1=$(now_ms)
    [ $((t1 - t0)) -lt 2500 ] || { echo "took $((t1 - t0)) ms"; return 1; }
    [ ! -s out ] || { echo "the command ran"; return 1; }
    expect_grep "names the lock file" err "p.lock" || return 1
    expect_grep "names the holder" err "pid" || return 1
    "$RESIL" lock --timeout 0 p -- true 2>err
    expect "--timeout 0: status" $? 1 || return 1
    wait
    "$RESIL" lock --timeout 0 p -- true
    expect "free again" $? 0
}

t_lock_shared() {
    "$RESIL" lock --shared q -- sleep 1.5 &
    bg $!
    sleep 0.4
    "$RESIL" lock --shared --timeout 0.3 q -- echo both >out 2>err
    expect "two shared: status" $? 0 || return 1
    expect "two shared: ran" "$(cat out)" both || return 1
    "$RESIL" lock --timeout 0.3 q -- true 2>err
    expect "exclusive while shared: status" $? 1 || return 1
    wait
}

t_lock_exclusion() {
    # Two holders in a row never overlap: each checks a marker file.
    rm -f marker overlap
    cat >crit <<'EOF'
#!/bin/sh
[ -e marker ] && echo overlap >>overlap
touch marker; sleep 0.05; rm -f marker
EOF
    chmod +x crit
    local i pids=()
    for i in 1 2 3 4; do
        (for _ in 1 2 3 4 5; do "$RESIL" lock --timeout 30 r -- ./crit || exit 1; done) &
        pids+=($!)
        bg $!
    done
    local fails=0
    for i in "${pids[@]}"; do wait "$i" || fails=$((fails + 1)); done
    expect "failed loops" "$fails" 0 || return 1
    [ ! -e overlap ] || { echo "critical sections overlapped"; return 1; }
}

t_lock_signal() {
    rm -f up.out
    "$RESIL" lock s -- sh -c 'trap "echo got-term >term.out; exit 9" TERM; echo up >up.out; sleep 5 & wait' &
    local pid=$! i
    bg $pid
    # wait until the command runs with its trap set (slow under sanitizers)
    for i in $(seq 1 100); do [ -s up.out ] && break; sleep 0.05; done
    [ -s up.out ] || { echo "the command did not start"; return 1; }
    kill -TERM $pid
    wait $pid
    expect "status" $? 9 || return 1
    expect "CMD got SIGTERM" "$(cat term.out 2>/dev/null)" got-term || return 1
    "$RESIL" lock --timeout 0 s -- true
    expect "released" $? 0
}

check "help of every sub-command" t_help
check "usage errors exit 2 with a message" t_usage_errors
check "json get with pointers and --raw" t_json_get
check "json: a bad file gives FILE:LINE:COLUMN" t_json_bad_file
check "json: a missing file" t_json_missing_file
check "json check of a valid file prints nothing" t_json_check_ok
check "json set" t_json_set
check "json del" t_json_del
check "json update with a sh filter" t_json_update_sh
if [ $HAVE_PY = 1 ]; then
    check "json update with a python3 filter" t_json_update_py
else
    skip "json update with a python3 filter" "no python3"
fi
if [ $HAVE_JQ = 1 ]; then
    check "json update with jq" t_json_update_jq
else
    skip "json update with jq" "no jq"
fi
check "json update failures leave the file unchanged" t_json_update_failures
check "json update of a big document does not deadlock" t_json_update_big
check "4 concurrent update loops lose no increment" t_json_concurrent
check "json set times out on a held lock" t_json_lock_timeout
check "yaml get, set, del, update, check" t_yaml
check "ndjson append" t_ndjson_append
check "ndjson append from stdin" t_ndjson_stdin
check "concurrent ndjson appends" t_ndjson_concurrent
check "ndjson torn tail: cat, check, repair" t_ndjson_torn
check "ndjson bad lines" t_ndjson_bad_lines
check "lock passes the command's status" t_lock_status
check "lock times out naming the lock and holder" t_lock_timeout
check "shared locks coexist" t_lock_shared
check "exclusive locks exclude" t_lock_exclusion
check "lock forwards SIGTERM" t_lock_signal
# Started with SIGCHLD ignored, resil still gets its command's exit status.
t_sigchld_ignored() {
    [ $HAVE_PY = 1 ] || return 0
    python3 -c 'import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execvp(sys.argv[1], sys.argv[1:])' "$RESIL" lock ig -- sh -c 'exit 3'
    expect "status" $? 3
}
check "SIGCHLD ignored by the parent" t_sigchld_ignored

finish
