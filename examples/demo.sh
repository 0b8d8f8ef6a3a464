#!/usr/bin/env bash
# examples/demo.sh RESIL_BIN [EXAMPLE_BIN] - the `make demo` walk-through.
set -euo pipefail
resil=${1:-build/dev/resil}
example=${2:-build/dev/example_retry}
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

if [ -x "$example" ]; then
  step "the same from C: resil_retry() with hooks (examples/retry_example.c)"
  "$example"
fi
