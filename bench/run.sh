#!/usr/bin/env bash
# bench/run.sh - builds the release preset, installs the peers, runs the C
# benchmark and the peers side by side, and prints a summary with ratios.
# `make bench` runs it.  Benchmarks, not tests: timings never fail the run;
# a failed build, a failed count check of bench_retry (allocations, clock
# reads, random numbers) or of bench_breaker (allocations, clock reads, locks
# on the closed path), a failed content check of bench_files (every record
# and document written whole) or a failed check of bench_metrics (no
# allocation or lock on inc/observe, exact values, 10,000 series exported)
# does.  A peer that is unavailable is reported
# as skipped.
#
# Knobs (environment):
#   BENCH_ONLY=retry,files,breaker,metrics,lockwait,startup  the sections to run (comma-separated;
#                         e.g. BENCH_ONLY=breaker runs bench_breaker and its peers only)
#   BENCH_RUNS=7          runs per figure (median and min are reported)
#   BENCH_SCALE=1         multiplies bench_retry's, bench_breaker's and bench_metrics'
#                         iteration counts
#   BENCH_PEER_SECONDS=0.25  target time of one peer run
#   BENCH_LOCKWAIT_SECONDS=2  the time of each bench_lockwait config (N x hold x 4 at least)
#   BENCH_STARTUP_RUNS=300  runs per command of the startup section (hyperfine)
#   BENCH_FILES_QUICK=0   1: bench_files --quick and fewer ops for the file peers
#   BENCH_BUILD_DIR=build/release  where the release preset is built (another
#                         directory keeps a bench build apart from others' builds)
#   BENCH_FILES_DIR=$BENCH_BUILD_DIR/bench/tmp  where the file benchmarks write
#                         (use a real disk, not a tmpfs; it is emptied first)
# Raw outputs are kept in $BENCH_BUILD_DIR/bench/results/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

runs="${BENCH_RUNS:-7}"
scale="${BENCH_SCALE:-1}"
peer_seconds="${BENCH_PEER_SECONDS:-0.25}"
PY=/usr/bin/python3 # Debian's interpreter: python3-tenacity lives there, not in a pyenv
bdir="${BENCH_BUILD_DIR:-build/release}"
out="$bdir/bench/results"
files_quick="${BENCH_FILES_QUICK:-0}"
files_dir="${BENCH_FILES_DIR:-$bdir/bench/tmp}"
only="${BENCH_ONLY:-retry,files,breaker,metrics,lockwait,startup}"
want() { [[ ",$only," == *",$1,"* ]]; }
for s in ${only//,/ }; do
  case "$s" in
    retry | files | breaker | metrics | lockwait | startup) ;;
    *)
      echo "bench/run.sh: BENCH_ONLY: unknown section '$s' (sections: retry, files, breaker, metrics, lockwait, startup)" >&2
      exit 2
      ;;
  esac
done

echo "== build (release preset)"
if [ "$bdir" = build/release ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j2
else
  cmake --preset release -B "$bdir" >/dev/null
  cmake --build "$bdir" -j2
fi

echo "== peers"
bash bench/peers/install.sh || true

mkdir -p "$out"
rm -f "$out/machine.txt"

echo "== machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "kernel: $(uname -sr)"
  echo "cc: $(cc --version | head -1)"
  echo "python: $("$PY" --version 2>&1 || echo none)"
  echo "node: $(node --version 2>/dev/null || echo none)"
  mkdir -p "$files_dir"
  echo "files dir: $files_dir on $(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$files_dir" 2>/dev/null || echo '?')"
} | tee "$out/machine.txt"

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

# ---- retry: bench_retry and its peers ------------------------------------------------------
c_rc=0
if want retry; then
rm -f "$out/resil.txt" "$out/tenacity.txt" "$out/cockatiel.txt"
echo "== resil (C): $bdir/bench/bench_retry --runs $runs --scale $scale"
"$bdir/bench/bench_retry" --runs "$runs" --scale "$scale" | tee "$out/resil.txt" || c_rc=$?

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
fi # want retry

# ---- process-safe files: bench_files and its peers ---------------------------------------
f_rc=0
if want files; then
rm -f "$out/resil_files.txt" "$out/atomicwrites.txt" "$out/filelock.txt" \
  "$out/write-file-atomic.txt" "$out/proper-lockfile.txt"
rm -rf "$files_dir"
mkdir -p "$files_dir"
if [ "$files_quick" != 0 ]; then
  files_args=(--quick)
  p_atomic=200 p_append=2000 p_append_sync=200
else
  files_args=()
  p_atomic=1000 p_append=5000 p_append_sync=500
fi
echo "== resil (C): $bdir/bench/bench_files ${files_args[*]} --dir $files_dir"
"$bdir/bench/bench_files" "${files_args[@]}" --dir "$files_dir" | tee "$out/resil_files.txt" || f_rc=$?
if [ "$f_rc" -eq 0 ] && [ -f "$files_dir/doc.json" ]; then
  if [ -x "$PY" ]; then
    run_peer atomicwrites "$PY" bench/peers/atomicwrites_bench.py --dir "$files_dir" --ops "$p_atomic"
    run_peer filelock "$PY" bench/peers/filelock_bench.py --dir "$files_dir" --ops "$p_append" --ops-sync "$p_append_sync"
  else
    peer_status[atomicwrites]="skipped ($PY not found)"
    peer_status[filelock]="skipped ($PY not found)"
  fi
  if command -v node >/dev/null; then
    run_peer write-file-atomic node bench/peers/write_file_atomic_bench.mjs --dir "$files_dir" --ops "$p_atomic"
    run_peer proper-lockfile node bench/peers/proper_lockfile_bench.mjs --dir "$files_dir" --ops "$p_append" --ops-sync "$p_append_sync"
  else
    for p in write-file-atomic proper-lockfile; do peer_status[$p]="skipped (node not found)"; done
  fi
else
  for p in atomicwrites filelock write-file-atomic proper-lockfile; do peer_status[$p]="skipped (bench_files failed)"; done
fi
fi # want files

# ---- circuit breakers: bench_breaker and its peers ---------------------------------------
b_rc=0
if want breaker; then
rm -f "$out/resil_breaker.txt" "$out/cockatiel-breaker.txt" "$out/opossum.txt"
mkdir -p "$files_dir"
echo "== resil (C): $bdir/bench/bench_breaker --runs $runs --scale $scale --dir $files_dir"
"$bdir/bench/bench_breaker" --runs "$runs" --scale "$scale" --dir "$files_dir" |
  tee "$out/resil_breaker.txt" || b_rc=$?
if command -v node >/dev/null; then
  run_peer cockatiel-breaker node bench/peers/cockatiel_breaker_bench.mjs --runs "$runs" --seconds "$peer_seconds"
  run_peer opossum node bench/peers/opossum_bench.mjs --runs "$runs" --seconds "$peer_seconds"
else
  for p in cockatiel-breaker opossum; do peer_status[$p]="skipped (node not found)"; done
fi
fi # want breaker

# ---- metrics: bench_metrics and its peers ------------------------------------------------
m_rc=0
if want metrics; then
rm -f "$out/resil_metrics.txt" "$out/prometheus_client.txt" "$out/prom-client.txt"
echo "== resil (C): $bdir/bench/bench_metrics --runs $runs --scale $scale"
"$bdir/bench/bench_metrics" --runs "$runs" --scale "$scale" | tee "$out/resil_metrics.txt" || m_rc=$?
if [ -x "$PY" ]; then
  run_peer prometheus_client "$PY" bench/peers/prometheus_client_bench.py --runs "$runs" --seconds "$peer_seconds"
else
  echo "== peer prometheus_client: skipped ($PY not found)"
  peer_status[prometheus_client]="skipped ($PY not found)"
fi
if command -v node >/dev/null; then
  run_peer prom-client node bench/peers/prom_client_bench.mjs --runs "$runs" --seconds "$peer_seconds"
else
  echo "== peer prom-client: skipped (node not found)"
  peer_status[prom-client]="skipped (node not found)"
fi
fi # want metrics

# ---- lock waits: bench_lockwait (resil's fair queue and flock(2), same run) --------------
l_rc=0
if want lockwait; then
rm -f "$out/resil_lockwait.txt"
mkdir -p "$files_dir"
echo "== resil (C): $bdir/bench/bench_lockwait --seconds ${BENCH_LOCKWAIT_SECONDS:-2} --dir $files_dir"
"$bdir/bench/bench_lockwait" --seconds "${BENCH_LOCKWAIT_SECONDS:-2}" --dir "$files_dir" |
  tee "$out/resil_lockwait.txt" || l_rc=$?
fi # want lockwait

# ---- summary ------------------------------------------------------------------------
if want retry; then
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
fi # want retry

if want files; then
echo
echo "== summary: process-safe files (bench_files; per-op ns, percentiles over all ops)"
if [ -f "$out/resil_files.txt" ]; then
  grep -h '^setup ' "$out/resil_files.txt" || true
  echo "-- resil against the hand-written C floor (same run, interleaved op by op)"
  awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    /^files op=(json_atomic_write_1k|ndjson_append_locked) / {
      if (!hdr++) printf "%-22s %-9s %-18s %8s %12s %12s %12s\n", "op", "mode", "variant", "ops", "p50", "p90", "p99"
      printf "%-22s %-9s %-18s %8s %12s %12s %12s\n", kv($0, "op"), kv($0, "mode"), kv($0, "variant"), kv($0, "ops"), kv($0, "p50_ns"), kv($0, "p90_ns"), kv($0, "p99_ns")
    }
    /^ratio / { printf "  ratio %-22s %-9s %-18s / %-18s p50 %sx  p90 %sx  p99 %sx\n", kv($0, "op"), kv($0, "mode"), kv($0, "variant"), kv($0, "vs"), kv($0, "p50"), kv($0, "p90"), kv($0, "p99") }
    /^bench ndjson_append_procs / { print "  " substr($0, 7) }
  ' "$out/resil_files.txt"
  echo "-- peers, each in its durability class (ratio: p50 / resil p50 in the same class)"
  for f in resil_files atomicwrites filelock write-file-atomic proper-lockfile; do
    [ -f "$out/$f.txt" ] && cat "$out/$f.txt"
  done | { grep '^compare-files ' || true; } | awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    {
      n++; cls[n] = kv($0, "class"); impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); var[n] = kv($0, "variant")
      p50[n] = kv($0, "p50_ns"); p90[n] = kv($0, "p90_ns"); p99[n] = kv($0, "p99_ns")
      if (impl[n] == "resil") ref[cls[n]] = p50[n]
      if (!(cls[n] in seen)) { seen[cls[n]] = 1; order[++nc] = cls[n] }
    }
    END {
      if (!n) { print "(no comparable figures)"; exit }
      printf "%-14s %-18s %-7s %-22s %12s %12s %12s %10s\n", "class", "impl", "lang", "variant", "p50", "p90", "p99", "p50/resil"
      for (c = 1; c <= nc; c++)
        for (i = 1; i <= n; i++) if (cls[i] == order[c]) {
          r = (order[c] in ref && ref[order[c]] > 0) ? sprintf("%.2fx", p50[i] / ref[order[c]]) : "-"
          printf "%-14s %-18s %-7s %-22s %12s %12s %12s %10s\n", cls[i], impl[i], lang[i], var[i], p50[i], p90[i], p99[i], r
        }
      print "(classes: atomic_FULL fsync file + rename + fsync dir; atomic_FILE fsync file + rename;"
      print " atomic_NONE no fsync; append_nosync / append_sync: fdatasync after each record or not)"
    }'
  for p in atomicwrites filelock write-file-atomic proper-lockfile; do
    echo "peer $p: ${peer_status[$p]:-skipped}"
  done
  grep -h '^verdict ' "$out/resil_files.txt" || true
  if grep -q '^check .* ok=0' "$out/resil_files.txt"; then
    echo "content checks: FAILED:"
    grep '^check .* ok=0' "$out/resil_files.txt"
  else
    echo "content checks (documents and logs written whole): $(grep -c '^check .* ok=1' "$out/resil_files.txt") passed"
  fi
else
  echo "(bench_files did not run)"
fi
fi # want files

if want breaker; then
echo
echo "== summary: circuit breakers (bench_breaker; ns per call, median of $runs runs)"
if [ -f "$out/resil_breaker.txt" ]; then
  echo "-- resil (C): closed no-op, open reject, failure path"
  awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    /^bench (cb_closed_noop|cb_shared_closed_noop|cb_fail_path|cb_open_reject) / {
      if (!hdr++) printf "%-22s %-24s %-14s %7s %10s %10s %10s\n", "figure", "variant", "breaker", "threads", "median", "min", "cpu_median"
      c = kv($0, "cpu_median_ns")
      printf "%-22s %-24s %-14s %7s %10s %10s %10s\n", $2, kv($0, "variant"), kv($0, "breaker"), kv($0, "threads"), kv($0, "median_ns"), kv($0, "min_ns"), c == "" ? "-" : c
    }
    /^bench cb_(shared_)?closed_noop_overhead / { printf "  overhead %-22s %-12s %-14s threads=%s: %s ns (min %s; thread CPU time %s)\n", $2, kv($0, "variant"), kv($0, "breaker"), kv($0, "threads"), kv($0, "overhead_ns"), kv($0, "overhead_min_ns"), kv($0, "cpu_overhead_ns") }
    /^bench cb_(shared_)?closed_noop_scaling / { printf "  scaling  %-22s %-12s %-14s 2 threads / 1 thread: %sx paired (medians %sx, mins %sx, thread CPU time %sx)\n", $2, kv($0, "variant"), kv($0, "breaker"), kv($0, "paired_ratio_2t_1t"), kv($0, "ratio_2t_1t"), kv($0, "ratio_min_2t_1t"), kv($0, "cpu_ratio_2t_1t") }
    /^load / { print "  " $0 }
  ' "$out/resil_breaker.txt"
  echo "  (median/min: wall clock per call and thread; cpu_median: thread CPU time per call,"
  echo "   which leaves out time spent descheduled when other work shares the machine; paired:"
  echo "   the median over runs of the two-thread / one-thread ratio within each run; floor_*: the"
  echo "   fast path written by hand, no resil; local_own_each: each thread has its own breaker)"
  echo "-- closed no-op against the peers (ratios: this row / resil call_closed row)"
  for f in resil_breaker cockatiel-breaker opossum; do [ -f "$out/$f.txt" ] && cat "$out/$f.txt"; done | { grep '^compare-breaker ' || true; } | awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    {
      n++
      impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); var[n] = kv($0, "variant")
      d[n] = kv($0, "direct_ns"); w[n] = kv($0, "wrapper_ns"); o[n] = kv($0, "overhead_ns")
      omin[n] = kv($0, "overhead_min_ns")
      if (impl[n] == "resil" && var[n] == "call_closed") ref = n
    }
    END {
      if (!n) { print "(no comparable figures)"; exit }
      printf "%-10s %-5s %-32s %9s %10s %10s %10s %11s %12s\n", "impl", "lang", "variant", "direct", "wrapper", "overhead", "ovh(min)", "ovh/resil", "total/resil"
      for (i = 1; i <= n; i++) {
        ro = (ref && o[ref] > 0) ? sprintf("%.0fx", o[i] / o[ref]) : "-"
        rt = (ref && w[ref] > 0) ? sprintf("%.0fx", w[i] / w[ref]) : "-"
        if (impl[i] == "resil") {
          ro = (ref && o[ref] > 0) ? sprintf("%.2fx", o[i] / o[ref]) : "-"
          rt = (ref && w[ref] > 0) ? sprintf("%.2fx", w[i] / w[ref]) : "-"
        }
        printf "%-10s %-5s %-32s %9.2f %10.2f %10.2f %10.2f %11s %12s\n", impl[i], lang[i], var[i], d[i], w[i], o[i], omin[i], ro, rt
      }
      print "(direct: the no-op called directly; wrapper: through the breaker; overhead = wrapper - direct;"
      print " Node figures include promise resolution: their execute/fire is async)"
    }'
  echo "-- open reject against the peers (ratio: this row / resil acquire_open row)"
  for f in resil_breaker cockatiel-breaker opossum; do [ -f "$out/$f.txt" ] && cat "$out/$f.txt"; done | { grep '^compare-reject ' || true; } | awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    {
      n++; impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); var[n] = kv($0, "variant")
      ns[n] = kv($0, "ns"); mn[n] = kv($0, "min_ns")
      if (impl[n] == "resil" && var[n] == "acquire_open") ref = n
    }
    END {
      if (!n) { print "(no comparable figures)"; exit }
      printf "%-10s %-5s %-24s %10s %10s %10s\n", "impl", "lang", "variant", "median", "min", "/resil"
      for (i = 1; i <= n; i++) {
        r = (ref && ns[ref] > 0) ? sprintf(impl[i] == "resil" ? "%.2fx" : "%.0fx", ns[i] / ns[ref]) : "-"
        printf "%-10s %-5s %-24s %10.2f %10.2f %10s\n", impl[i], lang[i], var[i], ns[i], mn[i], r
      }
    }'
  for p in cockatiel-breaker opossum; do
    echo "peer $p: ${peer_status[$p]:-skipped}"
  done
  grep -h '^verdict ' "$out/resil_breaker.txt" || true
  if grep -q '^check .* ok=0' "$out/resil_breaker.txt"; then
    echo "count checks: FAILED:"
    grep '^check .* ok=0' "$out/resil_breaker.txt"
  else
    echo "count checks (allocations, clock reads, locks, successes counted on the closed path): $(grep -c '^check .* ok=1' "$out/resil_breaker.txt") passed"
  fi
else
  echo "(bench_breaker did not run)"
fi
fi # want breaker

if want metrics; then
echo
echo "== summary: metrics (bench_metrics; ns per call, median and min of $runs runs; handles resolved once)"
if [ -f "$out/resil_metrics.txt" ]; then
  echo "-- resil (C): updates on a handle, label lookups, and hand-written floors (no resil)"
  awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    /^bench metrics_(counter_inc|counter_add|gauge_set|gauge_add|histogram_observe|counter_get) / {
      if (!hdr++) printf "%-26s %-15s %-31s %7s %9s %9s %10s\n", "figure", "variant", "op", "threads", "median", "min", "cpu_median"
      printf "%-26s %-15s %-31s %7s %9s %9s %10s\n", $2, kv($0, "variant"), kv($0, "op"), kv($0, "threads"), kv($0, "median_ns"), kv($0, "min_ns"), kv($0, "cpu_median_ns")
    }
    /^bench metrics_.*_scaling / { f = $2; sub(/_scaling$/, "", f); printf "  scaling  %-26s %-15s 2 threads / 1 thread: %sx paired (medians %sx, mins %sx, thread CPU time %sx)\n", f, kv($0, "variant"), kv($0, "paired_ratio_2t_1t"), kv($0, "ratio_2t_1t"), kv($0, "ratio_min_2t_1t"), kv($0, "cpu_ratio_2t_1t") }
    /^bench metrics_paired_diff / { printf "  paired difference %-21s - %-31s %6s ns (thread CPU time %s ns)\n", kv($0, "a"), kv($0, "b"), kv($0, "paired_diff_ns"), kv($0, "cpu_paired_diff_ns") }
    /^info metrics_counter_get / { print "  " substr($0, 6) }
    /^load / { print "  " $0 }
  ' "$out/resil_metrics.txt"
  echo "  (two threads: ns per call and thread; same_child: both threads on one handle; own_child_each:"
  echo "   a handle each, nothing shared; cpu_median: thread CPU time, which leaves out time spent"
  echo "   descheduled when other work shares the machine; floor: calls of noinline functions written"
  echo "   by hand, no resil: empty, a plain load+store, an atomic add; for observe a branch-free count"
  echo "   of the bounds below v, then three loads+stores, or an atomic add, a CAS on the sum and an"
  echo "   atomic add; paired difference: the median over runs of (a - b) within each run)"
  echo "-- updates and lookups against the peers (ratio: this row / the resil row of the same op and variant)"
  for f in resil_metrics prometheus_client prom-client; do [ -f "$out/$f.txt" ] && cat "$out/$f.txt"; done | { grep '^compare-metrics ' || true; } | awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    {
      n++; impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); op[n] = kv($0, "op"); var[n] = kv($0, "variant")
      ns[n] = kv($0, "ns"); mn[n] = kv($0, "min_ns")
      if (impl[n] == "resil") { ref[op[n] " " var[n]] = ns[n]; if (!(op[n] in first)) first[op[n]] = ns[n] }
      if (!(op[n] in seen)) { seen[op[n]] = 1; order[++no] = op[n] }
    }
    END {
      if (!n) { print "(no comparable figures)"; exit }
      printf "%-18s %-18s %-7s %-20s %10s %10s %10s\n", "op", "impl", "lang", "variant", "median", "min", "/resil"
      for (o = 1; o <= no; o++)
        for (i = 1; i <= n; i++) if (op[i] == order[o]) {
          k = op[i] " " var[i]
          r = (k in ref) ? ref[k] : ((op[i] in first) ? first[op[i]] : "")
          q = (r != "" && r > 0) ? ns[i] / r : -1
          rs = q < 0 ? "-" : (q >= 10 ? sprintf("%.0fx", q) : sprintf("%.2fx", q))
          printf "%-18s %-18s %-7s %-20s %10.2f %10.2f %10s\n", op[i], impl[i], lang[i], var[i], ns[i], mn[i], rs
        }
      print "(prom-client: its child from labels() is inc bound to a labels object, so each inc still hashes"
      print " the labels and looks the series up, and labels() itself does no lookup (labels_bind, no ratio);"
      print " call_noop: one call of an empty function in that runtime (V8 inlines it); the Python and Node"
      print " figures include their interpreter)"
    }'
  echo "-- export of 10,000 series against the peers (ms per export; ratio: this row / resil, same scenario and format)"
  for f in resil_metrics prometheus_client prom-client; do [ -f "$out/$f.txt" ] && cat "$out/$f.txt"; done | { grep '^compare-export ' || true; } | awk '
    function kv(line, key,   re) {
      re = " " key "=[^ ]+"
      if (match(" " line, re)) return substr(" " line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
      return ""
    }
    {
      n++; impl[n] = kv($0, "impl"); lang[n] = kv($0, "lang"); sc[n] = kv($0, "scenario"); fm[n] = kv($0, "format")
      ms[n] = kv($0, "ms"); mn[n] = kv($0, "min_ms"); by[n] = kv($0, "bytes"); se[n] = kv($0, "series")
      k = sc[n] " " fm[n]
      if (impl[n] == "resil") ref[k] = ms[n]
      if (!(k in seen)) { seen[k] = 1; order[++no] = k }
    }
    END {
      if (!n) { print "(no comparable figures)"; exit }
      printf "%-12s %-12s %-18s %-7s %10s %10s %9s %7s %8s\n", "scenario", "format", "impl", "lang", "median", "min", "bytes", "series", "/resil"
      for (o = 1; o <= no; o++)
        for (i = 1; i <= n; i++) if (sc[i] " " fm[i] == order[o]) {
          k = sc[i] " " fm[i]
          rs = (k in ref && ref[k] > 0) ? sprintf("%.1fx", ms[i] / ref[k]) : "-"
          printf "%-12s %-12s %-18s %-7s %10.3f %10.3f %9s %7s %8s\n", sc[i], fm[i], impl[i], lang[i], ms[i], mn[i], by[i], se[i], rs
        }
      print "(counter_10k: one counter family, 10,000 label combinations; mix_10k: 4,000 counter + 1,800 gauge"
      print " children + 300 histogram children x 14 lines; series: sample lines counted in the output;"
      print " prometheus_client runs with its _created series disabled, so all export the same lines)"
    }'
  grep -h '^bench metrics_export .*format=json' "$out/resil_metrics.txt" | sed 's/^bench /  resil /' || true
  grep -h '^info metrics_build ' "$out/resil_metrics.txt" | sed 's/^info /  /' || true
  for p in prometheus_client prom-client; do
    echo "peer $p: ${peer_status[$p]:-skipped}"
  done
  grep -h '^verdict ' "$out/resil_metrics.txt" || true
  if grep -q '^check .* ok=0' "$out/resil_metrics.txt" || grep -q 'check(s) FAILED' "$out/resil_metrics.txt"; then
    echo "checks: FAILED:"
    grep '^check .* ok=0\|^note ' "$out/resil_metrics.txt" || true
  else
    echo "checks (no allocation or lock on inc/add/observe over 1,000,000 calls per thread, exact values and buckets, 10,000 series exported): $(grep -c '^check .* ok=1' "$out/resil_metrics.txt") passed"
  fi
else
  echo "(bench_metrics did not run)"
fi
fi # want metrics

if want lockwait; then
echo
echo "== summary: lock waits (bench_lockwait; ms; fair bound = (N-1) x hold; target: resil max <= 2 x bound)"
if [ -f "$out/resil_lockwait.txt" ]; then
  grep -h '^lockwait \|^verdict ' "$out/resil_lockwait.txt" | sed 's/^lockwait //' || true
else
  echo "(bench_lockwait did not run)"
fi
fi # want lockwait

# ---- startup: what a program pays to start (hyperfine; bench/bench_startup.sh) ----------
st_rc=0
if want startup; then
  # hyperfine and Debian's retry(1) are benchmark dependencies, never test ones.
  bash scripts/deps.sh bench || true
  if command -v hyperfine >/dev/null && command -v retry >/dev/null; then
    BENCH_RUNS="${BENCH_STARTUP_RUNS:-300}" bash bench/bench_startup.sh "$bdir/resil" |
      tee "$out/resil_startup.txt" || st_rc=$?
  else
    echo "== startup: skipped (hyperfine or retry missing: apt-get install hyperfine retry)"
  fi
fi # want startup

echo "raw outputs: $out/"
if [ "$f_rc" -ne 0 ]; then
  echo "bench_files exited with status $f_rc" >&2
fi
if [ "$b_rc" -ne 0 ]; then
  echo "bench_breaker exited with status $b_rc" >&2
fi
if [ "$m_rc" -ne 0 ]; then
  echo "bench_metrics exited with status $m_rc" >&2
fi
if [ "$c_rc" -ne 0 ]; then
  echo "bench_retry exited with status $c_rc" >&2
  exit "$c_rc"
fi
if [ "$f_rc" -ne 0 ]; then
  exit "$f_rc"
fi
if [ "$b_rc" -ne 0 ]; then
  exit "$b_rc"
fi
if [ "$m_rc" -ne 0 ]; then
  exit "$m_rc"
fi
if [ "$l_rc" -ne 0 ]; then
  echo "bench_lockwait exited with status $l_rc" >&2
  exit "$l_rc"
fi
if [ "$st_rc" -ne 0 ]; then
  echo "bench_startup.sh exited with status $st_rc" >&2
  exit "$st_rc"
fi
