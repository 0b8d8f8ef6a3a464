#!/usr/bin/python3
"""bench/peers/tenacity_bench.py - the retry_success_first scenario with tenacity.

An op that succeeds at once, called directly and through tenacity's retry
wrapper (stop_after_attempt(4) = 1 + 3 retries and wait_exponential_jitter,
like resil's RESIL_RETRY_TRANSIENT), in the decorator form (@retry) and as a
reused Retrying object.  Prints ns/op (median and min of the runs) and the
wrapper's overhead over the direct call, in the same line format as
bench_retry ("bench ...", "compare ...").

Run it with Debian's interpreter (/usr/bin/python3): that is where
python3-tenacity is installed.  Exits 3 when tenacity is missing (the caller
reports the peer as skipped).

Usage: tenacity_bench.py [--runs R] [--seconds S]   (S: target time per run)
"""
import argparse
import statistics
import sys
import time

try:
    import tenacity
    from tenacity import Retrying, retry, stop_after_attempt, wait_exponential_jitter
except ImportError:
    print("peer tenacity: skipped (python3-tenacity is not installed for %s)" % sys.executable)
    sys.exit(3)


def op():
    return 42


STOP = stop_after_attempt(4)
WAIT = wait_exponential_jitter(initial=1, max=30)


@retry(stop=STOP, wait=WAIT, reraise=True)
def op_decorated():
    return 42


RETRYING = Retrying(stop=STOP, wait=WAIT, reraise=True)


def loop_direct(n):
    f = op
    t0 = time.perf_counter_ns()
    for _ in range(n):
        f()
    return time.perf_counter_ns() - t0


def loop_decorator(n):
    f = op_decorated
    t0 = time.perf_counter_ns()
    for _ in range(n):
        f()
    return time.perf_counter_ns() - t0


def loop_retrying(n):
    r, f = RETRYING, op
    t0 = time.perf_counter_ns()
    for _ in range(n):
        r(f)
    return time.perf_counter_ns() - t0


VARIANTS = [("direct", loop_direct), ("decorator", loop_decorator), ("retrying_object", loop_retrying)]


def calibrate(fn, seconds):
    n = 1000
    while True:
        ns = fn(n)
        if ns >= seconds * 1e9 / 4 or n >= 1 << 26:
            return max(1000, int(n * seconds * 1e9 / ns))
        n *= 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.25)
    a = ap.parse_args()

    assert op_decorated() == 42 and RETRYING(op) == 42
    print("peer tenacity: tenacity %s on Python %s (%s)" % (
        getattr(tenacity, "__version__", None) or _version(), sys.version.split()[0], sys.executable))
    iters = {name: calibrate(fn, a.seconds) for name, fn in VARIANTS}
    samples = {name: [] for name, _ in VARIANTS}
    for _ in range(a.runs):  # interleaved, as in bench_retry
        for name, fn in VARIANTS:
            samples[name].append(fn(iters[name]) / iters[name])
    st = {name: (statistics.median(s), min(s)) for name, s in samples.items()}
    for name, _ in VARIANTS:
        med, mn = st[name]
        print("bench peer=tenacity variant=%s iters=%d runs=%d median_ns=%.1f min_ns=%.1f ops_per_s=%.0f"
              % (name, iters[name], a.runs, med, mn, 1e9 / med))
    d = st["direct"]
    for name in ("decorator", "retrying_object"):
        w = st[name]
        print("compare impl=tenacity lang=Python variant=%s direct_ns=%.1f wrapper_ns=%.1f overhead_ns=%.1f "
              "direct_min_ns=%.1f wrapper_min_ns=%.1f overhead_min_ns=%.1f"
              % (name, d[0], w[0], w[0] - d[0], d[1], w[1], w[1] - d[1]))


def _version():
    try:
        import importlib.metadata as md
        return md.version("tenacity")
    except Exception:  # pragma: no cover
        return "?"


if __name__ == "__main__":
    main()
