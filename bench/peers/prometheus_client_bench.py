#!/usr/bin/python3
"""bench/peers/prometheus_client_bench.py - bench_metrics' scenarios with prometheus_client.

The official Python client (Debian's python3-prometheus-client, 0.16 on
Debian 12), measured as bench_metrics measures resil:

  counter_inc        child.inc() on a child resolved once (c.labels('GET', '200'))
  histogram_observe  child.observe(v) on a child of a histogram with resil's
                     default buckets (0.005 .. 10; prometheus_client's own
                     default has 14 bounds, so they are passed explicitly), the
                     values in the same pseudo-random order as bench_metrics
                     (the same xorshift32 sequence over one value per bucket)
  labels_lookup      c.labels('GET', '200') on a family of one child, and
                     c.labels(path, code) cycling through a family of 10,000
  call_noop          a call of a Python function that does nothing: the
                     interpreter's floor for one call
  export             generate_latest (text format 0.0.4) and the OpenMetrics
                     generate_latest of the counter_10k and mix_10k registries
                     of bench_metrics (10,000 sample lines each)

The _created series are disabled (PROMETHEUS_DISABLE_CREATED_SERIES=True,
read by prometheus_client at import) so that every implementation exports
the same 10,000 sample lines; the bench counts them.

Prints ns/op (median and min of the runs) in bench_metrics' line format
("bench ...", "compare-metrics ...", "compare-export ...").  Run it with
Debian's interpreter (/usr/bin/python3).  Exits 3 when prometheus_client is
missing (the caller reports the peer as skipped).

Usage: prometheus_client_bench.py [--runs R] [--seconds S]   (S: target time per run)
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest
except ImportError:
    print("peer prometheus_client: skipped (python3-prometheus-client is not installed for %s)"
          % sys.executable)
    sys.exit(3)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_VALUES = (0.00390625, 0.0078125, 0.015625, 0.03125, 0.0625, 0.125, 0.375, 0.75,
                 2.0, 4.0, 8.0, 16.0)
SPREAD = 4096


def make_spread():
    x, out = 2463534242, []
    for _ in range(SPREAD):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(BUCKET_VALUES[x % 12])
    return out


SPREAD_VALUES = make_spread()
CODES = ("200", "201", "404", "500", "503")

# ---- update paths -----------------------------------------------------------------

REG = CollectorRegistry()
COUNTER = Counter("bench_requests", "A counter of the bench.", ["method", "code"], registry=REG)
HIST = Histogram("bench_request_seconds", "A histogram of the bench.", ["method", "code"],
                 buckets=BUCKETS, registry=REG)
ONE = Counter("bench_get_one", "A counter of the bench.", ["method", "code"], registry=REG)
TENK = Counter("bench_get_10k", "A counter of the bench.", ["path", "code"], registry=REG)
TENK_VALUES = [("/api/item/%d" % (i // 5), CODES[i % 5]) for i in range(10000)]
ONE.labels("GET", "200")
for _p, _c in TENK_VALUES:
    TENK.labels(_p, _c)
C_CHILD = COUNTER.labels("GET", "200")
H_CHILD = HIST.labels("GET", "200")


def noop():
    pass


def loop_noop(n):
    f = noop
    t0 = time.perf_counter_ns()
    for _ in range(n):
        f()
    return time.perf_counter_ns() - t0


def loop_inc(n):
    inc = C_CHILD.inc
    t0 = time.perf_counter_ns()
    for _ in range(n):
        inc()
    return time.perf_counter_ns() - t0


_values_cache = {}


def values_for(n):
    v = _values_cache.get(n)
    if v is None:
        v = (SPREAD_VALUES * (n // SPREAD + 1))[:n]
        _values_cache.clear()
        _values_cache[n] = v
    return v


def loop_observe(n):
    obs = H_CHILD.observe
    vals = values_for(n)
    t0 = time.perf_counter_ns()
    for v in vals:
        obs(v)
    return time.perf_counter_ns() - t0


def loop_labels_one(n):
    lab = ONE.labels
    t0 = time.perf_counter_ns()
    for _ in range(n):
        lab("GET", "200")
    return time.perf_counter_ns() - t0


def loop_labels_10k(n):
    lab = TENK.labels
    vals = TENK_VALUES
    m = len(vals)
    t0 = time.perf_counter_ns()
    j = 0
    for _ in range(n):
        p, c = vals[j]
        lab(p, c)
        j += 1
        if j == m:
            j = 0
    return time.perf_counter_ns() - t0


VARIANTS = [
    ("call_noop", loop_noop),
    ("counter_inc", loop_inc),
    ("histogram_observe", loop_observe),
    ("labels_lookup_1", loop_labels_one),
    ("labels_lookup_10k", loop_labels_10k),
]

# ---- export ----------------------------------------------------------------------


def build_counter_10k():
    r = CollectorRegistry()
    c = Counter("bench_http_requests", "A counter of bench_metrics.", ["path", "code"], registry=r)
    for i in range(10000):
        c.labels("/api/item/%d" % (i // 5), CODES[i % 5]).inc(i % 97 + 1)
    return r


def build_mix_10k():
    r = CollectorRegistry()
    methods = ("GET", "POST", "PUT", "DELETE")
    c = Counter("bench_mix_requests", "A counter of bench_metrics.", ["method", "path"], registry=r)
    g = Gauge("bench_mix_queue_depth", "A gauge of bench_metrics.", ["queue"], registry=r)
    h = Histogram("bench_mix_request_seconds", "A histogram of bench_metrics.", ["handler"],
                  buckets=BUCKETS, registry=r)
    for i in range(4000):
        c.labels(methods[i % 4], "/api/v1/resource/%d" % (i // 4)).inc(i % 89 + 1)
    for i in range(1800):
        g.labels("queue-%d" % i).set((i % 50) * 0.5)
    for i in range(300):
        hh = h.labels("handler_%d" % i)
        for j in range(20):
            hh.observe(SPREAD_VALUES[(i * 20 + j) & (SPREAD - 1)])
    return r


def count_samples(text):
    return sum(1 for line in text.split(b"\n") if line.startswith(b"bench_"))


def calibrate(fn, seconds):
    n = 1000
    while True:
        ns = fn(n)
        if ns >= seconds * 1e9 / 4 or n >= 1 << 24:
            return max(1000, int(n * seconds * 1e9 / ns))
        n *= 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.25)
    a = ap.parse_args()

    print("peer prometheus_client: prometheus_client %s on Python %s (%s)" % (
        _version(), sys.version.split()[0], sys.executable))
    iters = {name: calibrate(fn, a.seconds) for name, fn in VARIANTS}
    samples = {name: [] for name, _ in VARIANTS}
    for _ in range(a.runs):  # interleaved, as in bench_metrics
        for name, fn in VARIANTS:
            samples[name].append(fn(iters[name]) / iters[name])
    st = {name: (statistics.median(s), min(s)) for name, s in samples.items()}
    for name, _ in VARIANTS:
        med, mn = st[name]
        print("bench peer=prometheus_client variant=%s iters=%d runs=%d median_ns=%.1f min_ns=%.1f "
              "ops_per_s=%.0f" % (name, iters[name], a.runs, med, mn, 1e9 / med))
    rows = [("counter_inc", "child_handle", "counter_inc"),
            ("histogram_observe", "child_handle_spread", "histogram_observe"),
            ("labels_lookup", "family_of_1", "labels_lookup_1"),
            ("labels_lookup", "family_of_10000", "labels_lookup_10k"),
            ("call_noop", "interpreter_floor", "call_noop")]
    for op, variant, name in rows:
        print("compare-metrics impl=prometheus_client lang=Python op=%s variant=%s ns=%.1f min_ns=%.1f"
              % (op, variant, st[name][0], st[name][1]))

    # export: k exports per run (about `seconds` per run and format)
    regs = {"counter_10k": build_counter_10k(), "mix_10k": build_mix_10k()}
    fmts = {"prometheus": generate_latest, "openmetrics": om_generate_latest}
    info = {}
    ks = {}
    for s, r in regs.items():
        for f, gen in fmts.items():
            t0 = time.perf_counter_ns()
            out = gen(r)
            dt = time.perf_counter_ns() - t0
            info[s, f] = (len(out), count_samples(out))
            ks[s, f] = max(1, min(20, int(a.seconds * 1e9 / max(dt, 1))))
    ex = {key: [] for key in info}
    for _ in range(a.runs):
        for s, r in regs.items():
            for f, gen in fmts.items():
                k = ks[s, f]
                t0 = time.perf_counter_ns()
                for _ in range(k):
                    gen(r)
                ex[s, f].append((time.perf_counter_ns() - t0) / k)
    for (s, f), xs in ex.items():
        med, mn = statistics.median(xs), min(xs)
        nbytes, series = info[s, f]
        print("bench peer=prometheus_client export scenario=%s format=%s exports_per_run=%d runs=%d "
              "median_ms=%.3f min_ms=%.3f bytes=%d series=%d"
              % (s, f, ks[s, f], a.runs, med / 1e6, mn / 1e6, nbytes, series))
        print("compare-export impl=prometheus_client lang=Python scenario=%s format=%s ms=%.3f "
              "min_ms=%.3f bytes=%d series=%d" % (s, f, med / 1e6, mn / 1e6, nbytes, series))


def _version():
    try:
        import importlib.metadata as md
        return md.version("prometheus_client")
    except Exception:  # pragma: no cover
        return getattr(prometheus_client, "__version__", "?")


if __name__ == "__main__":
    main()
