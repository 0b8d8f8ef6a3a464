#!/usr/bin/env bash
# examples/demo.sh RESIL_BIN [EXAMPLE_BIN] - the `make demo` walk-through.
set -euo pipefail
resil=${1:-build/dev/resil}
example=${2:-build/dev/example_retry}
example_breaker=${3:-$(dirname "$example")/example_breaker}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -t 1 ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

step "resil run: a command that fails twice, then succeeds"
echo "\$ resil run --name fetch --base-delay 0.2 --max-delay 2 --events events.ndjson -- flaky.sh"
"$resil" run --name fetch --base-delay 0.2 --max-delay 2 --seed 7 \
    --events "$tmp/events.ndjson" -- "$here/flaky.sh" "$tmp/counter" 2
echo "exit status: $?  (stdout above carried only the successful attempt's output)"

step "the events file: one NDJSON line per attempt"
cat "$tmp/events.ndjson"

step "retries exhausted: the command's own exit status comes back"
rm -f "$tmp/counter"
set +e
"$resil" run --name fetch --max-retries 2 --base-delay 0.1 --max-delay 0.2 -- \
    "$here/flaky.sh" "$tmp/counter" 5
echo "exit status: $?"
set -e

step "permanent failures are not retried (--stop-on 75)"
rm -f "$tmp/counter"
set +e
"$resil" run --name fetch --stop-on 75 -- "$here/flaky.sh" "$tmp/counter" 5
echo "exit status: $? after $(cat "$tmp/counter") attempt(s)"
set -e

step "shared state: 4 processes update one JSON file at once (locked read-modify-write)"
inc="$tmp/inc.sh"   # the filter: reads the document, prints it with runs + 1
cat >"$inc" <<'AWK'
#!/bin/sh
exec awk '/"runs"/ { sub(/[0-9]+/, $2 + 1) } { print }'
AWK
chmod +x "$inc"
echo '{"runs": 0}' >"$tmp/state.json"
for p in 1 2 3 4; do
  ( for i in $(seq 1 25); do "$resil" json update "$tmp/state.json" -- "$inc" || exit 1; done ) &
done
wait
echo "\$ resil json get state.json /runs   (4 x 25 updates)"
"$resil" json get "$tmp/state.json" /runs

step "an event log shared by processes: whole records only"
for p in 1 2 3; do
  ( for i in $(seq 1 100); do echo "{\"proc\": $p, \"i\": $i}"; done | "$resil" ndjson append "$tmp/events.log" ) &
done
wait
printf '{"proc": 9, "i": 1, "torn' >>"$tmp/events.log"   # a writer killed mid-record
echo "\$ resil ndjson check events.log"
"$resil" ndjson check "$tmp/events.log" || true
echo "\$ resil ndjson repair events.log && resil ndjson check events.log"
"$resil" ndjson repair "$tmp/events.log" && "$resil" ndjson check "$tmp/events.log"

step "a circuit breaker shared by processes: 3 failures trip it, then commands are not even run"
export RESIL_STATE_DIR="$tmp/breakers"
set +e
for i in 1 2 3; do
  "$resil" run --breaker payments --failure-threshold 3 --recovery-timeout 1 --max-retries 0 -q -- false
done
echo "\$ resil run --breaker payments -- echo charged"
"$resil" run --breaker payments -- echo charged
echo "exit status: $? (EX_TEMPFAIL: the command was not run)"
set -e
echo "\$ resil breaker status payments --json"
"$resil" breaker status payments --json
sleep 1.1
echo "\$ resil run --breaker payments -- echo charged   (after the recovery timeout: a trial call)"
"$resil" run --breaker payments -- echo charged
"$resil" breaker list
unset RESIL_STATE_DIR

if [ -x "$example_breaker" ]; then
  step "breakers from C, on a simulated clock (examples/breaker_example.c)"
  "$example_breaker"
fi

if [ -x "$example" ]; then
  step "the same from C: resil_retry() with hooks (examples/retry_example.c)"
  "$example"
fi
