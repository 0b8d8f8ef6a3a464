# tests/cli/lib.sh - helpers shared by the black-box CLI tests (sourced).
# Each check prints "ok - NAME" or "not ok - NAME" (diagnostics on "# "
# lines); the script ends with "N passed, M failed".

PASS=0
FAIL=0

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# check NAME FUNCTION [ARGS...]: runs the function; it prints its own
# diagnostics (on stdout) and returns non-zero on failure.
check() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok - $name"
        PASS=$((PASS + 1))
    else
        echo "not ok - $name"
        [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/#   /'
        FAIL=$((FAIL + 1))
    fi
}

skip() { echo "ok - $1 # SKIP $2"; PASS=$((PASS + 1)); }

# expect WHAT GOT WANT
expect() {
    if [ "$2" != "$3" ]; then
        echo "$1: got '$2', want '$3'"
        return 1
    fi
}

# expect_grep WHAT FILE PATTERN (fixed string)
expect_grep() {
    if ! grep -qF -- "$3" "$2"; then
        echo "$1: '$3' not found in:"
        sed 's/^/  | /' "$2"
        return 1
    fi
}

# finish: the closing line and the exit status.
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
