#!/usr/bin/python3
"""bench/peers/filelock_bench.py - ndjson_append_locked with filelock.

Appends the same record line that bench_files appends (DIR/record.ndjson) to
a log held open with O_APPEND, one os.write per record, inside
filelock.FileLock acquire()/release() on "<log>.lock" (a FileLock object made
once; on Linux it opens the lock file and flock()s it on every acquire, and
closes it on release).  Without sync (class=append_nosync) and with
os.fdatasync after each write inside the lock (class=append_sync).  For
context, the hand-written Python floor (fcntl.lockf on a held sidecar around
the same os.write) is timed too, interleaved op by op.

Every op is timed on its own (perf_counter_ns); p50/p90/p99 are nearest-rank
percentiles.  Run with /usr/bin/python3; exits 3 when filelock is missing.

Usage: filelock_bench.py --dir DIR [--ops N] [--ops-sync N]
"""
import argparse
import fcntl
import os
import sys
import time

try:
    import filelock
    from filelock import FileLock
except ImportError:
    print("peer filelock: skipped (python3-filelock is not installed for %s)" % sys.executable)
    sys.exit(3)


def pct(sorted_s, p):
    n = len(sorted_s)
    return sorted_s[max(0, (n * p + 99) // 100 - 1)]


def report(cls, variant, samples):
    s = sorted(samples)
    line = "impl=filelock lang=Python variant=%s ops=%d p50_ns=%d p90_ns=%d p99_ns=%d" % (
        variant, len(s), pct(s, 50), pct(s, 90), pct(s, 99))
    print("files op=ndjson_append_locked class=%s %s mean_ns=%d min_ns=%d" % (cls, line, sum(s) // len(s), s[0]))
    print("compare-files class=%s %s" % (cls, line))


def run(a, rec, sync, ops):
    d = os.path.join(a.dir, "peer_filelock", "sync" if sync else "nosync")
    os.makedirs(d, exist_ok=True)
    logs = {v: os.path.join(d, v + ".ndjson") for v in ("filelock", "python_floor")}
    for p in logs.values():
        if os.path.exists(p):
            os.unlink(p)
    fd_fl = os.open(logs["filelock"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    lock = FileLock(logs["filelock"] + ".lock")
    fd_pf = os.open(logs["python_floor"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    lfd_pf = os.open(logs["python_floor"] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def fl():
        lock.acquire()
        try:
            os.write(fd_fl, rec)
            if sync:
                os.fdatasync(fd_fl)
        finally:
            lock.release()

    def floor():
        fcntl.lockf(lfd_pf, fcntl.LOCK_EX)
        os.write(fd_pf, rec)
        if sync:
            os.fdatasync(fd_pf)
        fcntl.lockf(lfd_pf, fcntl.LOCK_UN)

    fns = [("filelock", fl), ("python_floor", floor)]
    samples = {v: [] for v, _ in fns}
    warm = max(5, ops // 10)
    clock = time.perf_counter_ns
    for i in range(-warm, ops):
        for k in range(len(fns)):
            v, fn = fns[(i + k) % len(fns)]
            t0 = clock()
            fn()
            t1 = clock()
            if i >= 0:
                samples[v].append(t1 - t0)
    for fd in (fd_fl, fd_pf, lfd_pf):
        os.close(fd)
    ok = all(os.path.getsize(p) == (ops + warm) * len(rec) for p in logs.values())
    print("check peer filelock sync=%d sizes_match=%d ok=%d" % (sync, ok, ok))
    cls = "append_sync" if sync else "append_nosync"
    report(cls, "acquire_write_release", samples["filelock"])
    report(cls, "python_floor", samples["python_floor"])
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--ops-sync", type=int, default=2000)
    a = ap.parse_args()
    with open(os.path.join(a.dir, "record.ndjson"), "rb") as f:
        rec = f.read()
    print("peer filelock version=%s python=%s" % (filelock.__version__, sys.version.split()[0]))
    ok = run(a, rec, False, a.ops) and run(a, rec, True, a.ops_sync)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
