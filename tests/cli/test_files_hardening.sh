#!/usr/bin/env bash
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# tests/cli/test_files_hardening.sh RESIL - issue 10, files part, through the
# command: links planted in a shared directory, no lock sidecar left by a
# failed command, read-only files, parser messages, reals kept short.
#
# Prints "ok - NAME" / "not ok - NAME" per check and ends with
# "N passed, M failed"; checks that need root are skipped without it.
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

T=$(mktemp -d "${TMPDIR:-/tmp}/resil-test-hard.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
# shellcheck source=lib.sh
. "$HERE/lib.sh"

ROOT=0
[ "$(id -u)" = 0 ] && ROOT=1

no_file() {
    if [ -e "$2" ] || [ -L "$2" ]; then
        echo "$1: $2 exists"
        return 1
    fi
}

t_symlink_sticky() {
    mkdir -p priv shared && chmod 01777 shared || return 1
    printf '{"secret": 1}\n' >priv/v.json
    cp priv/v.json v.before
    ln -s "$T/priv/v.json" shared/state.json || return 1
    chown -h 65534:65534 shared/state.json || return 1
    "$RESIL" json set shared/state.json /a 1 2>err
    expect "exit status" $? 1 || return 1
    expect_grep "refusal names the link" err "refusing to follow the symlink shared/state.json" || return 1
    expect_grep "refusal names its owner" err "uid 65534" || return 1
    cmp -s priv/v.json v.before || { echo "the victim changed"; return 1; }
    "$RESIL" yaml set shared/state.json "" '{}' 2>/dev/null
    expect "yaml exit status" $? 1 || return 1
    "$RESIL" ndjson append shared/state.json '{"x":1}' 2>/dev/null
    expect "ndjson exit status" $? 1 || return 1
    cmp -s priv/v.json v.before || { echo "the victim changed"; return 1; }
    no_file "no sidecar" priv/v.json.lock || return 1
    # the caller's own link is followed
    chown -h 0:0 shared/state.json || return 1
    "$RESIL" json set shared/state.json /a 1 || return 1
    expect "followed" "$("$RESIL" json get priv/v.json /a)" 1 || return 1
    [ -L shared/state.json ] || { echo "the link was replaced"; return 1; }
}

t_no_sidecar() {
    "$RESIL" json set missing.json /a 1 2>err
    expect "missing: exit status" $? 1 || return 1
    expect_grep "missing: says so" err "missing.json does not exist" || return 1
    if grep -q unchanged err; then echo "says unchanged:"; cat err; return 1; fi
    no_file "missing: no sidecar" missing.json.lock || return 1
    "$RESIL" json del missing.json /a 2>/dev/null
    expect "del missing: exit status" $? 1 || return 1
    no_file "del missing: no sidecar" missing.json.lock || return 1
    "$RESIL" json set nodir/x.json "" 1 2>err
    expect "missing dir: exit status" $? 1 || return 1
    expect_grep "missing dir is named" err "its directory nodir does not exist" || return 1
    mkdir d
    "$RESIL" json set d "" 1 2>err
    expect "dir: exit status" $? 1 || return 1
    expect_grep "dir: says what it is" err "is not a regular file (it is a directory)" || return 1
    no_file "dir: no sidecar" d.lock || return 1
    mkfifo f
    "$RESIL" yaml set f "" 1 2>err
    expect "fifo: exit status" $? 1 || return 1
    expect_grep "fifo: says what it is" err "a FIFO" || return 1
    no_file "fifo: no sidecar" f.lock || return 1
    if [ $ROOT = 1 ] && [ ! -e /dev/null.lock ]; then
        "$RESIL" json set /dev/null "" 1 2>err
        expect "/dev/null: exit status" $? 1 || return 1
        no_file "/dev/null: no sidecar" /dev/null.lock || return 1
    fi
}

t_read_only() {
    printf '{"v": 0}\n' >ro.json
    chmod 0444 ro.json
    cp ro.json ro.before
    "$RESIL" json set ro.json /v 1 2>err
    expect "exit status" $? 1 || return 1
    expect_grep "names the file and mode" err "refusing to replace ro.json: it is read-only (mode 0444" || return 1
    cmp -s ro.json ro.before || { echo "ro.json changed"; return 1; }
    no_file "no sidecar" ro.json.lock || return 1
    "$RESIL" json set --force ro.json /v 1 || return 1
    expect "forced" "$("$RESIL" json get ro.json /v)" 1 || return 1
    expect "mode kept" "$(stat -c %a ro.json)" 444
}

t_parser_messages() {
    printf '\xef\xbb\xbf{"a": 1}\n' >bom.json
    "$RESIL" json check bom.json 2>err
    expect "bom: exit" $? 1 || return 1
    expect_grep "bom" err "bom.json:1:1: the file starts with a UTF-8 byte order mark" || return 1
    printf '{"a": 1}\n\0\n' >nul.json
    "$RESIL" json check nul.json 2>err
    expect_grep "nul json" err "nul.json:2:1: a NUL byte at line 2 column 1 after the document" || return 1
    printf 'a: 1\n\0\n' >nul.yaml
    "$RESIL" yaml check nul.yaml 2>err
    expect_grep "nul yaml" err "nul.yaml:2:1: a NUL byte at line 2 column 1 after the document" || return 1
    : >empty.json
    : >empty.yaml
    "$RESIL" json check empty.json 2>err
    expect_grep "empty json" err "empty.json: the file is empty" || return 1
    "$RESIL" yaml get empty.yaml 2>err
    expect "empty yaml: exit" $? 1 || return 1
    expect_grep "empty yaml" err "empty.yaml: the file is empty" || return 1
    # update treats an empty file as a missing one
    "$RESIL" json set empty.json "" '{"n": 1}' || return 1
    expect "set on empty" "$("$RESIL" json get empty.json /n)" 1 || return 1
    : >empty2.json
    "$RESIL" json set empty2.json /a 1 2>err
    expect_grep "set /a on empty" err "empty2.json is empty or does not exist" || return 1
}

t_reals() {
    printf '{"x": 0.1, "y": 1e300, "z": 123456789.123, "big": 9007199254740993}\n' >r.json
    "$RESIL" json set r.json /a 1 || return 1
    expect "file" "$(tr -d ' \n' <r.json)" '{"x":0.1,"y":1e300,"z":123456789.123,"big":9007199254740993,"a":1}' || return 1
    expect "get" "$("$RESIL" json get r.json /x)" 0.1 || return 1
    "$RESIL" yaml set r.yaml "" '[0.1, 5e-324, 1.0]' || return 1
    expect "yaml" "$(tr '\n' ' ' <r.yaml)" '- 0.1 - 5e-324 - 1.0 '
}

if [ $ROOT = 1 ]; then
    check "a link another user planted in a sticky dir is not followed" t_symlink_sticky
else
    skip "a link another user planted in a sticky dir is not followed" "needs root"
fi
check "a read-only file is refused unless --force" t_read_only
check "a failed command leaves no lock sidecar" t_no_sidecar
check "parser messages say what they found" t_parser_messages
check "reals that a command did not touch keep their text" t_reals
finish
