#!/usr/bin/env bash
# bench/bench_startup.sh [RESIL] - what a program pays to start: `resil version`
# and `resil ndjson append FILE '{}'` against /bin/true and `echo >> FILE`,
# `resil run -q -- true` against Debian's `retry -- true`, timed by hyperfine
# (Debian packages hyperfine and retry; bench/run.sh installs them).
#
# Every command runs without a shell (hyperfine -N); the shell one-liner
# `echo '{}' >> FILE` is therefore timed as `sh -c ...`, its real cost in a
# pipeline step.  Prints hyperfine's tables, then one line per pair with the
# ratio of the medians (the machine may be noisy) and the target (1.5x).  A
# benchmark, not a test: a missed target is printed, never an exit status.
#
# Environment: BENCH_RUNS (default 300 runs per command), BENCH_WARMUP (20).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
resil=${1:-$here/../build/release/resil}
resil=$(cd "$(dirname "$resil")" && pwd)/$(basename "$resil")
runs=${BENCH_RUNS:-300}
warmup=${BENCH_WARMUP:-20}
for tool in hyperfine retry python3; do
  command -v "$tool" >/dev/null || { echo "bench_startup: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$resil" ] || { echo "bench_startup: no resil binary at $resil" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/events.ndjson
: >"$log"
export RESIL_METRICS_DIR= # no metrics directory: the figure is the start, not a flush
unset RESIL_STATE_DIR || true

hf() { # NAME COMMAND...: one hyperfine run, its JSON in $tmp/NAME.json
  local name=$1
  shift
  hyperfine -N -w "$warmup" -r "$runs" --style basic --export-json "$tmp/$name.json" "$@"
}

echo "== startup: $("$resil" version), $(hyperfine --version), $(nproc) CPUs, $(uname -r)"
echo "   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
hf version "/bin/true" "$resil version"
hf append "/bin/true" "sh -c 'echo {} >> $log'" "$resil ndjson append $log {}"
hf run "retry -- true" "$resil run -q -- true"

python3 - "$tmp" <<'PY'
import json, sys, os
tmp = sys.argv[1]
def stats(name):
    with open(os.path.join(tmp, name + ".json")) as f:
        return [(r["median"], r["mean"], min(r["times"])) for r in json.load(f)["results"]]
def ms(x):
    return f"{x[0]*1e3:5.2f} ms (mean {x[1]*1e3:5.2f}, min {x[2]*1e3:5.2f})"
print("\n== startup summary: median (mean, min); ratio of the medians, target <= 1.5x")
def line(label, ours, peer):
    ratio = ours[0] / peer[0]
    print(f"  {label:44s} {ms(ours)} vs {ms(peer)}: {ratio:4.2f}x "
          f"{'ok' if ratio <= 1.5 else 'MISSED (target 1.5x)'}")
true_v, version = stats("version")
true_a, sh, append = stats("append")
retry, run = stats("run")
line("resil version vs /bin/true", version, true_v)
line("resil ndjson append vs /bin/true", append, true_a)
line("resil ndjson append vs sh -c 'echo >> file'", append, sh)
line("resil run -q -- true vs retry -- true", run, retry)
print(f"  (sh -c 'echo >> file' itself is {sh[0] / true_a[0]:4.2f}x /bin/true)")
PY
