#!/usr/bin/env bash
# bench/run.sh - builds the release preset, installs the peers, runs the C
# benchmark and the peers side by side, and prints a summary with ratios.
# `make bench` runs it.  Benchmarks, not tests: timings never fail the run;
# a failed build or a failed count check of bench_retry (allocations, clock
# reads, random numbers) does.  A peer that is unavailable is reported as
# skipped.
#
# Knobs (environment):
#   BENCH_RUNS=7          runs per figure (median and min are reported)
#   BENCH_SCALE=1         multiplies bench_retry's iteration counts
#   BENCH_PEER_SECONDS=0.25  target time of one peer run
# Raw outputs are kept in build/release/bench/results/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs="${BENCH_RUNS:-7}"
scale="${BENCH_SCALE:-1}"
peer_seconds="${BENCH_PEER_SECONDS:-0.25}"
PY=/usr/bin/python3 # Debian's interpreter: python3-tenacity lives there, not in a pyenv
out="build/release/bench/results"

echo "== build (release preset)"
cmake --preset release >/dev/null
cmake --build --preset release -j2

echo "== peers"
bash bench/peers/install.sh || true

mkdir -p "$out"
rm -f "$out"/*.txt

echo "== machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -sr)"
  echo "cc: $(cc --version | head -1)"
  echo "python: $("$PY" --version 2>&1 || echo none)"
  echo "node: $(node --version 2>/dev/null || echo none)"
} | tee "$out/machine.txt"

echo "== resil (C): build/release/bench/bench_retry --runs $runs --scale $scale"
c_rc=0
build/release/bench/bench_retry --runs "$runs" --scale "$scale" | tee "$out/resil.txt" || c_rc=$?

# run_peer NAME CMD... : runs a peer; exit 3 means "not installed".
declare -A peer_status
run_peer() {
  local name="$1"
  shift
  echo "== peer $name: $*"
  local rc=0
  "$@" | tee "$out/$name.txt" || rc=$?
  case "$rc" in
    0) peer_status[$name]="ran" ;;
    3) peer_status[$name]="skipped (not installed)" ;;
    *) peer_status[$name]="skipped (error, exit $rc)" ;;
  esac
}

if [ -x "$PY" ]; then
  run_peer tenacity "$PY" bench/peers/tenacity_bench.py --runs "$runs" --seconds "$peer_seconds"
else
  echo "== peer tenacity: skipped ($PY not found)"
  peer_status[tenacity]="skipped ($PY not found)"
fi
if command -v node >/dev/null; then
  run_peer cockatiel node bench/peers/cockatiel_bench.mjs --runs "$runs" --seconds "$peer_seconds"
else
  echo "== peer cockatiel: skipped (node not found)"
  peer_status[cockatiel]="skipped (node not found)"
fi

# ---- summary ------------------------------------------------------------------------
echo
echo "== summary: retry_success_first (an op that succeeds at once; ns per call, median of $runs runs)"
for f in resil tenacity cockatiel; do [ -f "$out/$f.txt" ] && cat "$out/$f.txt"; done | { grep '^compare ' || true; } | awk '
  function kv(line, key,   re, m) {
    re = " " key "=[^ ]+"
    if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
    return ""
  }
  {
    n++
    impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); var[n] = kv($0, "variant")
    d[n] = kv($0, "direct_ns"); w[n] = kv($0, "wrapper_ns"); o[n] = kv($0, "overhead_ns")
    omin[n] = kv($0, "overhead_min_ns")
    if (impl[n] == "resil" && !ref) { ref = n }
  }
  END {
    if (!n) { print "(no comparable figures)"; exit }
    printf "%-10s %-6s %-24s %10s %11s %11s %11s %12s %12s\n", "impl", "lang", "variant", "direct", "wrapper", "overhead", "ovh(min)", "ovh/resil", "total/resil"
    for (i = 1; i <= n; i++) {
      ro = (ref && o[ref] > 0) ? sprintf("%.0fx", o[i] / o[ref]) : "-"
      rt = (ref && w[ref] > 0) ? sprintf("%.0fx", w[i] / w[ref]) : "-"
      if (i == ref) { ro = "1x"; rt = "1x" }
      printf "%-10s %-6s %-24s %10.2f %11.2f %11.2f %11.2f %12s %12s\n", impl[i], lang[i], var[i], d[i], w[i], o[i], omin[i], ro, rt
    }
    print "(direct: the op called directly; wrapper: through the retry wrapper; overhead = wrapper - direct;"
    print " ratios: this row / resil row; Python and Node figures include their interpreter)"
  }'
for p in tenacity cockatiel; do
  echo "peer $p: ${peer_status[$p]:-skipped}"
done
grep -h '^verdict ' "$out/resil.txt" || true
if grep -q '^check .* ok=0' "$out/resil.txt"; then
  echo "count checks: FAILED:"
  grep '^check .* ok=0' "$out/resil.txt"
else
  echo "count checks (allocations, clock reads, random numbers on the success path): $(grep -c '^check retry_success_first .* ok=1' "$out/resil.txt") passed"
fi
echo "raw outputs: $out/"
if [ "$c_rc" -ne 0 ]; then
  echo "bench_retry exited with status $c_rc" >&2
  exit "$c_rc"
fi
