#!/usr/bin/python3
"""bench/peers/atomicwrites_bench.py - json_atomic_write_1k with atomicwrites.

Replaces a file with the same 1 KiB JSON text that bench_files writes
(DIR/doc.json), through atomicwrites' context manager:

    with atomic_write(path, mode="wb", overwrite=True) as f: f.write(data)

atomicwrites fsyncs the temp file, renames it over the target and fsyncs the
directory, so it is in resil's FULL durability class (class=atomic_FULL).
It takes no lock.  For context, the same syscalls written by hand in Python
(os.open O_CREAT|O_EXCL, os.write, os.fsync, os.close, os.rename, fsync of
the directory) are timed too ("python_floor"), interleaved op by op.

Every op is timed on its own (perf_counter_ns); p50/p90/p99 are nearest-rank
percentiles.  Prints "files ..." and "compare-files ..." lines like
bench_files.  Run with Debian's /usr/bin/python3; exits 3 when atomicwrites is
missing (bench/run.sh then reports the peer as skipped).

Usage: atomicwrites_bench.py --dir DIR [--ops N]
"""
import argparse
import os
import sys
import time

try:
    import atomicwrites
    from atomicwrites import atomic_write
except ImportError:
    print("peer atomicwrites: skipped (python3-atomicwrites is not installed for %s)" % sys.executable)
    sys.exit(3)


def pct(sorted_s, p):
    n = len(sorted_s)
    return sorted_s[max(0, (n * p + 99) // 100 - 1)]


def report(cls, variant, samples, compare):
    s = sorted(samples)
    line = "impl=atomicwrites lang=Python variant=%s ops=%d p50_ns=%d p90_ns=%d p99_ns=%d" % (
        variant, len(s), pct(s, 50), pct(s, 90), pct(s, 99))
    print("files op=json_atomic_write_1k class=%s %s mean_ns=%d min_ns=%d" % (cls, line, sum(s) // len(s), s[0]))
    if compare:
        print("compare-files class=%s %s" % (cls, line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ops", type=int, default=2000)
    a = ap.parse_args()
    with open(os.path.join(a.dir, "doc.json"), "rb") as f:
        data = f.read()
    base = os.path.join(a.dir, "peer_atomicwrites")
    dirs = {v: os.path.join(base, v) for v in ("atomic_write", "python_floor")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "state.json"), "wb") as f:
            f.write(data)

    def aw():
        with atomic_write(os.path.join(dirs["atomic_write"], "state.json"), mode="wb", overwrite=True) as f:
            f.write(data)

    fd_dir = dirs["python_floor"]
    target, tmp = os.path.join(fd_dir, "state.json"), os.path.join(fd_dir, ".state.json.tmp")

    def floor():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, target)
        dfd = os.open(fd_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.fsync(dfd)
        os.close(dfd)

    fns = [("atomic_write", aw), ("python_floor", floor)]
    samples = {v: [] for v, _ in fns}
    warm = max(5, a.ops // 10)
    clock = time.perf_counter_ns
    for i in range(-warm, a.ops):
        for k in range(len(fns)):
            v, fn = fns[(i + k) % len(fns)]
            t0 = clock()
            fn()
            t1 = clock()
            if i >= 0:
                samples[v].append(t1 - t0)
    with open(target, "rb") as f1, open(os.path.join(dirs["atomic_write"], "state.json"), "rb") as f2:
        ok = f1.read() == data and f2.read() == data
    print("check peer atomicwrites content_matches=%d ok=%d" % (ok, ok))
    print("peer atomicwrites version=%s python=%s" % (
        getattr(atomicwrites, "__version__", "?"), sys.version.split()[0]))
    report("atomic_FULL", "atomic_write", samples["atomic_write"], True)
    report("atomic_FULL", "python_floor", samples["python_floor"], True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
