#!/bin/sh
# examples/flaky.sh COUNTER_FILE FAILURES - a command that fails FAILURES
# times (exit 75, "temporarily unavailable") and then succeeds, counting its
# attempts in COUNTER_FILE.  Used by `make demo`.
counter=$1
failures=${2:-2}
n=$(cat "$counter" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$counter"
if [ "$n" -le "$failures" ]; then
  echo "flaky: attempt $n: service unavailable" >&2
  exit 75
fi
echo "flaky: attempt $n: ok, here is the data"
