#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_breaker_hardening.sh RESIL - issue 10 from the command line:
# what `resil breaker` and `resil run --breaker` trust in a state directory,
# a state file truncated under a running command, read-only inspection, and
# names that would drive a terminal (escape codes, newlines, invalid UTF-8,
# wide characters) printed safely in aligned columns.
#
# Checks that need another user (uid 65534) or root's view of a foreign
# directory run only as root (CI) and are skipped otherwise.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-cbhard.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
chmod 755 "$T" # uid 65534 must reach the state directories inside
cd "$T" || exit 1

unset RESIL_STATE_DIR RESIL_STATE_DIR_TRUST CIRCUIT_BREAKER_DEFAULT_THRESHOLD \
    CIRCUIT_BREAKER_DEFAULT_TIMEOUT RESIL_METRICS_DIR
export LC_ALL=C
GUARD=(timeout -k 5 60)
FAST=(--base-delay 0.01 --max-delay 0.02 --max-retries 0)

. "$HERE/lib.sh"

ESC=$'\e'
N1=$'\e[2J\nx'         # clears the screen, breaks the row
N2=$'bad\xff\xc3(utf8' # invalid UTF-8
N3='数据库服务'         # wide characters: 2 columns each
mode_of() { stat -c %a "$1"; }
# cb_file DIR NAME: the state file of a plain NAME
cb_file() { echo "$1/$2.cb"; }

# display_cols: for each table line on stdin, the display column where the
# STATE column starts (bytes, minus UTF-8 continuation bytes, plus one for
# each lead byte of a CJK ideograph U+4000..U+9FFF, which is 2 columns wide).
display_cols() {
    awk '{ i = match($0, / (STATE|closed|open|forced_open|disabled|half_open|error|corrupt) /)
           if (i == 0) { print "nomatch"; next }
           p = substr($0, 1, i); t = p; u = p
           nc = gsub(/[\200-\277]/, "", t); nw = gsub(/[\344-\351]/, "", u)
           print length(p) - nc + nw }'
}

t_created_private() {
    (
        umask 000
        "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir sd1 "${FAST[@]}" -- true
    ) || return 1
    expect "directory mode" "$(mode_of sd1)" 700 || return 1
    expect "state file mode" "$(mode_of sd1/svc.cb)" 600
}

t_shared_dir_refused() {
    mkdir -m 700 sd2 && "$RESIL" run --breaker svc --state-dir sd2 -- true || return 1
    chmod 777 sd2
    local rc
    "$RESIL" run --breaker svc --state-dir sd2 -- true 2>err.txt
    rc=$?
    expect "run exit on a 0777 dir" "$rc" 1 || return 1
    expect_grep "message" err.txt "refusing the directory sd2" || return 1
    expect_grep "hint" err.txt "RESIL_STATE_DIR_TRUST=shared" || return 1
    "$RESIL" breaker list --state-dir sd2 >out.txt 2>err.txt
    expect "list exit" "$?" 1 || return 1
    expect "list output" "$(cat out.txt)" "" || return 1
    expect "messages (said once)" "$(grep -c refusing err.txt)" 1 || return 1
    "$RESIL" breaker status svc --state-dir sd2 >/dev/null 2>&1
    expect "status exit" "$?" 1 || return 1
    "$RESIL" breaker trip svc --state-dir sd2 >/dev/null 2>&1
    expect "trip exit" "$?" 1 || return 1
    # opted in: flag, environment
    "$RESIL" run --breaker svc --state-dir sd2 --state-dir-trust shared -- true || return 1
    "$RESIL" breaker status svc --state-dir sd2 --state-dir-trust shared >/dev/null || return 1
    RESIL_STATE_DIR_TRUST=shared "$RESIL" breaker list --state-dir sd2 >out.txt || return 1
    expect_grep "list opted in" out.txt "svc" || return 1
    RESIL_STATE_DIR_TRUST=shared "$RESIL" run --breaker svc --state-dir sd2 -- true || return 1
    # the flag wins over the environment
    RESIL_STATE_DIR_TRUST=shared "$RESIL" breaker status svc --state-dir sd2 \
        --state-dir-trust private >/dev/null 2>&1
    expect "private flag over shared env" "$?" 1
}

t_bad_trust_values() {
    mkdir -m 700 sd3
    "$RESIL" run --breaker svc --state-dir sd3 -- true || return 1
    RESIL_STATE_DIR_TRUST=yes "$RESIL" breaker list --state-dir sd3 >/dev/null 2>err.txt
    expect "list with a bad env" "$?" 2 || return 1
    expect_grep "message" err.txt "RESIL_STATE_DIR_TRUST=yes is not a trust mode" || return 1
    RESIL_STATE_DIR_TRUST=yes "$RESIL" run --breaker svc --state-dir sd3 -- true 2>err.txt
    expect "run with a bad env" "$?" 2 || return 1
    expect_grep "run message" err.txt "RESIL_STATE_DIR_TRUST=yes" || return 1
    "$RESIL" breaker list --state-dir sd3 --state-dir-trust maybe >/dev/null 2>&1
    expect "bad flag" "$?" 2 || return 1
    "$RESIL" run --breaker svc --state-dir sd3 --state-dir-trust maybe -- true 2>/dev/null
    expect "bad run flag" "$?" 2
}

t_foreign_dir_and_file() {
    mkdir -m 700 sd4 && "$RESIL" run --breaker svc --state-dir sd4 -- true || return 1
    chown 65534:65534 sd4
    "$RESIL" run --breaker svc --state-dir sd4 -- true 2>err.txt
    expect "foreign dir" "$?" 1 || return 1
    expect_grep "message" err.txt "owned by uid 65534" || return 1
    chown 0:0 sd4
    chown 65534:65534 sd4/svc.cb
    "$RESIL" run --breaker svc --state-dir sd4 -- true 2>err.txt
    expect "foreign file" "$?" 1 || return 1
    expect_grep "file message" err.txt "owned by uid 65534" || return 1
    "$RESIL" breaker reset svc --state-dir sd4 >/dev/null 2>&1
    expect "reset of a foreign file" "$?" 1 || return 1
    "$RESIL" run --breaker svc --state-dir sd4 --state-dir-trust shared -- true
}

# The command truncates the mapped state file while it runs (as a user
# sharing an opted-in directory could): resil reports its success and exits
# 0, where it died of SIGBUS (exit 135) before.
t_truncated_under_run() {
    mkdir -m 777 sd5
    local rc
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir sd5 --state-dir-trust shared \
        "${FAST[@]}" -- sh -c ': > sd5/svc.cb' 2>err.txt
    rc=$?
    expect "exit after truncation to 0" "$rc" 0 || { cat err.txt; return 1; }
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir sd5 --state-dir-trust shared \
        "${FAST[@]}" -- sh -c 'truncate -s 5000 sd5/svc.cb' 2>err.txt
    rc=$?
    expect "exit after truncation to 5000 bytes" "$rc" 0 || { cat err.txt; return 1; }
    "$RESIL" breaker status svc --state-dir sd5 --state-dir-trust shared >out.txt || return 1
    expect_grep "status" out.txt "state:                closed" || return 1
    # in a private directory, by the owner itself
    mkdir -m 700 sd5p
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir sd5p "${FAST[@]}" -- \
        sh -c ': > sd5p/svc.cb' 2>err.txt
    rc=$?
    expect "exit after truncation in a private dir" "$rc" 0 || { cat err.txt; return 1; }
    "${GUARD[@]}" "$RESIL" run --breaker svc --state-dir sd5p "${FAST[@]}" -- \
        sh -c 'truncate -s 5000 sd5p/svc.cb; exit 3' 2>err.txt
    rc=$?
    expect "a failure reported after truncation" "$rc" 3 || { cat err.txt; return 1; }
    "$RESIL" breaker status svc --state-dir sd5p >out.txt || return 1
    # counted in the totals; the state was reset under it (a permit of before
    # a reset does not move the state)
    expect_grep "failure counted" out.txt "0 successful, 1 failed"
}

t_read_only_status() {
    mkdir -m 700 sd6
    "$RESIL" run --breaker svc --state-dir sd6 "${FAST[@]}" -- false 2>/dev/null
    "$RESIL" run --breaker other --state-dir sd6 "${FAST[@]}" -- true || return 1
    "$RESIL" breaker trip other --state-dir sd6 >/dev/null || return 1
    chmod 755 sd6
    chmod 644 sd6/*.cb
    local as=(setpriv --reuid 65534 --regid 65534 --clear-groups)
    "${as[@]}" "$RESIL" breaker status svc --state-dir sd6 >out.txt 2>err.txt
    expect "status as 65534" "$?" 0 || { cat err.txt; return 1; }
    expect_grep "state" out.txt "consecutive failures: 1" || return 1
    "${as[@]}" "$RESIL" breaker status svc --state-dir sd6 --json >out.txt || return 1
    expect_grep "json" out.txt '"failed":1' || return 1
    "${as[@]}" "$RESIL" breaker list --state-dir sd6 >out.txt 2>err.txt
    expect "list as 65534" "$?" 0 || { cat err.txt; return 1; }
    expect_grep "list row" out.txt "forced_open" || return 1
    expect "list rows" "$(wc -l <out.txt)" 3 || return 1
    # it cannot change them
    "${as[@]}" "$RESIL" breaker reset other --state-dir sd6 >/dev/null 2>err.txt
    expect "reset as 65534" "$?" 1 || return 1
    expect_grep "reset message" err.txt "ermission denied" || return 1
    "$RESIL" breaker status other --state-dir sd6 | grep -q forced_open
}

t_terminal_safe_names() {
    mkdir -m 700 sd7
    local n
    for n in "$N1" "$N2" "$N3" plain; do
        "$RESIL" run --breaker "$n" --state-dir sd7 "${FAST[@]}" -- true || return 1
    done
    "$RESIL" run --breaker "$N3" --state-dir sd7 "${FAST[@]}" -- false 2>/dev/null
    "$RESIL" breaker list --state-dir sd7 >out.txt 2>err.txt || { cat err.txt; return 1; }
    if grep -q "$ESC" out.txt; then
        echo "raw ESC in list output:"; cat -A out.txt; return 1
    fi
    expect "list lines (a header and 4 rows)" "$(wc -l <out.txt)" 5 || { cat -A out.txt; return 1; }
    expect_grep "escaped name" out.txt '\e[2J\nx' || return 1
    expect_grep "invalid UTF-8 escaped" out.txt 'bad\xff\xc3(utf8' || return 1
    expect_grep "wide name kept" out.txt "$N3" || return 1
    local cols
    cols=$(display_cols <out.txt | sort -u)
    # the widest name, bad\xff\xc3(utf8, is 16 columns, then two spaces
    expect "every row's STATE column at one display column" "$cols" 18 || {
        display_cols <out.txt; cat -A out.txt; return 1; }
    # status: one line per field, the name escaped
    "$RESIL" breaker status "$N1" --state-dir sd7 >out.txt || return 1
    if grep -q "$ESC" out.txt; then cat -A out.txt; return 1; fi
    expect "status name line" "$(head -1 out.txt)" 'name:                 \e[2J\nx' || return 1
    expect "status lines (one per field)" "$(wc -l <out.txt)" 8 || { cat -A out.txt; return 1; }
    "$RESIL" breaker trip "$N2" --state-dir sd7 >out.txt || return 1
    expect "trip line" "$(cat out.txt)" 'bad\xff\xc3(utf8: closed -> forced_open' || return 1
    # messages too, and the reset hint is a shell word that gives the name back
    "$RESIL" breaker status "$N1"y --state-dir sd7 2>err.txt
    if grep -q "$ESC" err.txt; then cat -A err.txt; return 1; fi
    expect "missing message lines" "$(wc -l <err.txt)" 1 || { cat -A err.txt; return 1; }
    printf 'junk' >"sd7/%1B%5B2J%0Ax.cb"
    "$RESIL" breaker status "$N1" --state-dir sd7 2>err.txt
    if grep -q "$ESC" err.txt; then cat -A err.txt; return 1; fi
    local hint
    hint=$(sed -n "s/.*'\(resil breaker reset .*\)' starts it afresh.*/\1/p" err.txt)
    expect "reset hint" "$hint" "resil breaker reset \$'\\e[2J\\nx' --state-dir sd7" || {
        cat -A err.txt; return 1; }
    eval "\"\$RESIL\" ${hint#resil }" >/dev/null 2>&1 || return 1
    "$RESIL" breaker status "$N1" --state-dir sd7 >/dev/null
}

# C1 controls (an 8-bit CSI) and a bidi override are escaped too; a
# combining accent is kept and takes no column.
t_c1_bidi_combining() {
    mkdir -m 700 sd8
    local n
    for n in $'\xc2\x9b2Jc1' $'\xe2\x80\xaeevil' $'cafe\xcc\x81' abcde; do
        "$RESIL" run --breaker "$n" --state-dir sd8 "${FAST[@]}" -- true || return 1
    done
    "$RESIL" breaker status $'\xc2\x9b2Jc1' --state-dir sd8 >out.txt || return 1
    expect "C1" "$(head -1 out.txt)" 'name:                 \xc2\x9b2Jc1' || return 1
    "$RESIL" breaker status $'\xe2\x80\xaeevil' --state-dir sd8 >out.txt || return 1
    expect "bidi" "$(head -1 out.txt)" 'name:                 \xe2\x80\xaeevil' || return 1
    "$RESIL" breaker list --state-dir sd8 >out.txt || return 1
    # "café" (5 bytes of which 2 are the accent) pads like "abcde" minus one
    local cafe abc
    cafe=$(grep -a '^cafe' out.txt | LC_ALL=C awk '{ i = index($0, "closed"); print i }')
    abc=$(grep -a '^abcde' out.txt | LC_ALL=C awk '{ i = index($0, "closed"); print i }')
    expect "combining accent: byte offset of STATE" "$cafe" "$((abc + 2))" || { cat -A out.txt; return 1; }
}

check "state dir and files created 0700 / 0600 whatever the umask" t_created_private
check "a 0777 state dir is refused unless opted in" t_shared_dir_refused
check "a bad RESIL_STATE_DIR_TRUST or --state-dir-trust is a usage error" t_bad_trust_values
if [ "$(id -u)" -eq 0 ]; then
    check "a dir or state file of another user is refused unless opted in" t_foreign_dir_and_file
else
    skip "a dir or state file of another user is refused unless opted in" "not root"
fi
check "a state file truncated while the command runs: exit 0, not SIGBUS" t_truncated_under_run
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
    check "status and list by a user who may read but not write" t_read_only_status
else
    skip "status and list by a user who may read but not write" "needs root and setpriv"
fi
check "names are printed terminal-safe, columns aligned by display width" t_terminal_safe_names
check "C1 controls and bidi overrides escaped, combining marks zero-width" t_c1_bidi_combining

finish
