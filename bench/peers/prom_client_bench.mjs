// bench/peers/prom_client_bench.mjs - bench_metrics' scenarios with prom-client.
//
// prom-client (npm, pinned in bench/peers/package.json), measured as bench_metrics measures
// resil:
//   counter_inc        child.inc() on `const child = c.labels('GET', '200')`, resolved once.
//                      prom-client's child is the counter's inc bound to a labels object, so
//                      every call still hashes the labels and looks the series up; the
//                      documented form c.inc({ method: 'GET', code: '200' }) is measured too,
//                      and an unlabelled counter's c.inc() for reference.
//   histogram_observe  child.observe(v) on a child of a histogram with the default buckets
//                      (prom-client's default is resil's: 0.005 .. 10), the values in the
//                      same pseudo-random order as bench_metrics (the same xorshift32
//                      sequence over one value per bucket).
//   labels_bind        c.labels('GET', '200') on a family of one child, and c.labels(path,
//                      code) cycling through a family of 10,000; prom-client's labels() only
//                      builds the bound functions (the lookup happens at each inc), so it is
//                      not the same work as resil_counter_get (reported as op=labels_bind, not
//                      labels_lookup, so that run.sh gives it no ratio): see counter_inc above.
//   call_noop          a call of a function that does nothing: the runtime's floor.
//   export             `await registry.metrics()` of the counter_10k and mix_10k registries
//                      of bench_metrics (10,000 sample lines each), with the registry's
//                      content type set to the Prometheus text format and to OpenMetrics.
// Prints ns/op (median and min of the runs) in bench_metrics' line format ("bench ...",
// "compare-metrics ...", "compare-export ...").
//
// Exits 3 when prom-client is not installed in bench/peers/node_modules (the caller reports
// the peer as skipped).
//
// Usage: node prom_client_bench.mjs [--runs R] [--seconds S]
let client;
try {
  client = (await import('prom-client')).default;
} catch (e) {
  console.log(`peer prom-client: skipped (cannot import prom-client: ${e.code || e.message})`);
  process.exit(3);
}
import { readFileSync } from 'node:fs';

const { Registry, Counter, Gauge, Histogram } = client;
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
};
const runs = opt('--runs', 7);
const seconds = opt('--seconds', 0.25);

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BUCKET_VALUES = [0.00390625, 0.0078125, 0.015625, 0.03125, 0.0625, 0.125, 0.375, 0.75, 2, 4, 8, 16];
const SPREAD = 4096;
const spread = new Float64Array(SPREAD);
{
  let x = 2463534242;
  for (let i = 0; i < SPREAD; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    spread[i] = BUCKET_VALUES[x % 12];
  }
}
const CODES = ['200', '201', '404', '500', '503'];

// ---- update paths ----------------------------------------------------------------------
const reg = new Registry();
const counter = new Counter({ name: 'bench_requests_total', help: 'A counter of the bench.', labelNames: ['method', 'code'], registers: [reg] });
const plain = new Counter({ name: 'bench_plain_total', help: 'A counter of the bench.', registers: [reg] });
const hist = new Histogram({ name: 'bench_request_seconds', help: 'A histogram of the bench.', labelNames: ['method', 'code'], buckets: BUCKETS, registers: [reg] });
const one = new Counter({ name: 'bench_get_one_total', help: 'A counter of the bench.', labelNames: ['method', 'code'], registers: [reg] });
const tenk = new Counter({ name: 'bench_get_10k_total', help: 'A counter of the bench.', labelNames: ['path', 'code'], registers: [reg] });
const tenkValues = [];
for (let i = 0; i < 10000; i++) tenkValues.push([`/api/item/${Math.floor(i / 5)}`, CODES[i % 5]]);
one.labels('GET', '200').inc(0);
for (const [p, c] of tenkValues) tenk.labels(p, c).inc(0);
const cChild = counter.labels('GET', '200');
const hChild = hist.labels('GET', '200');
const labelsObj = { method: 'GET', code: '200' };

let sink = 0;
const now = () => process.hrtime.bigint();
function noop() {}
const noopRef = [noop];

function loopNoop(n) {
  const f = noopRef[0];
  const t0 = now();
  for (let i = 0; i < n; i++) f();
  return Number(now() - t0);
}
function loopInc(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) cChild.inc();
  return Number(now() - t0);
}
function loopIncLabelsObject(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) counter.inc(labelsObj);
  return Number(now() - t0);
}
function loopIncPlain(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) plain.inc();
  return Number(now() - t0);
}
function loopObserve(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) hChild.observe(spread[i & (SPREAD - 1)]);
  return Number(now() - t0);
}
function loopLabelsOne(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) sink += one.labels('GET', '200') ? 1 : 0;
  return Number(now() - t0);
}
function loopLabels10k(n) {
  const t0 = now();
  let j = 0;
  for (let i = 0; i < n; i++) {
    const v = tenkValues[j];
    sink += tenk.labels(v[0], v[1]) ? 1 : 0;
    if (++j === tenkValues.length) j = 0;
  }
  return Number(now() - t0);
}

const variants = [
  ['call_noop', loopNoop],
  ['counter_inc', loopInc],
  ['counter_inc_labels_object', loopIncLabelsObject],
  ['counter_inc_unlabelled', loopIncPlain],
  ['histogram_observe', loopObserve],
  ['labels_lookup_1', loopLabelsOne],
  ['labels_lookup_10k', loopLabels10k],
];

function calibrate(fn) {
  let n = 1000;
  for (;;) {
    const ns = fn(n);
    if (ns >= (seconds * 1e9) / 4 || n >= 1 << 26) return Math.max(1000, Math.floor((n * seconds * 1e9) / ns));
    n *= 4;
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const version = JSON.parse(readFileSync(new URL('./node_modules/prom-client/package.json', import.meta.url), 'utf8')).version;
console.log(`peer prom-client: prom-client ${version} on Node ${process.version}`);

const iters = {};
for (const [name, fn] of variants) iters[name] = calibrate(fn); // also warms the JIT
const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++) for (const [name, fn] of variants) samples[name].push(fn(iters[name]) / iters[name]);
const st = {};
for (const [name] of variants) {
  st[name] = [median(samples[name]), Math.min(...samples[name])];
  const [med, min] = st[name];
  console.log(
    `bench peer=prom-client variant=${name} iters=${iters[name]} runs=${runs} median_ns=${med.toFixed(1)} ` +
      `min_ns=${min.toFixed(1)} ops_per_s=${(1e9 / med).toFixed(0)}`,
  );
}
for (const [op, variant, name] of [
  ['counter_inc', 'child_handle', 'counter_inc'],
  ['counter_inc', 'labels_object', 'counter_inc_labels_object'],
  ['counter_inc', 'unlabelled', 'counter_inc_unlabelled'],
  ['histogram_observe', 'child_handle_spread', 'histogram_observe'],
  ['labels_bind', 'family_of_1', 'labels_lookup_1'],
  ['labels_bind', 'family_of_10000', 'labels_lookup_10k'],
  ['call_noop', 'runtime_floor', 'call_noop'],
])
  console.log(
    `compare-metrics impl=prom-client lang=Node op=${op} variant=${variant} ns=${st[name][0].toFixed(1)} min_ns=${st[name][1].toFixed(1)}`,
  );

// ---- export ----------------------------------------------------------------------------
function buildCounter10k() {
  const r = new Registry();
  const c = new Counter({ name: 'bench_http_requests_total', help: 'A counter of bench_metrics.', labelNames: ['path', 'code'], registers: [r] });
  for (let i = 0; i < 10000; i++) c.inc({ path: `/api/item/${Math.floor(i / 5)}`, code: CODES[i % 5] }, (i % 97) + 1);
  return r;
}
function buildMix10k() {
  const r = new Registry();
  const methods = ['GET', 'POST', 'PUT', 'DELETE'];
  const c = new Counter({ name: 'bench_mix_requests_total', help: 'A counter of bench_metrics.', labelNames: ['method', 'path'], registers: [r] });
  const g = new Gauge({ name: 'bench_mix_queue_depth', help: 'A gauge of bench_metrics.', labelNames: ['queue'], registers: [r] });
  const h = new Histogram({ name: 'bench_mix_request_seconds', help: 'A histogram of bench_metrics.', labelNames: ['handler'], buckets: BUCKETS, registers: [r] });
  for (let i = 0; i < 4000; i++) c.inc({ method: methods[i % 4], path: `/api/v1/resource/${Math.floor(i / 4)}` }, (i % 89) + 1);
  for (let i = 0; i < 1800; i++) g.set({ queue: `queue-${i}` }, (i % 50) * 0.5);
  for (let i = 0; i < 300; i++) {
    const hh = h.labels(`handler_${i}`);
    for (let j = 0; j < 20; j++) hh.observe(spread[(i * 20 + j) & (SPREAD - 1)]);
  }
  return r;
}
const countSamples = (text) => text.split('\n').filter((l) => l.startsWith('bench_')).length;
const regs = { counter_10k: buildCounter10k(), mix_10k: buildMix10k() };
const fmts = { prometheus: Registry.PROMETHEUS_CONTENT_TYPE, openmetrics: Registry.OPENMETRICS_CONTENT_TYPE };
async function exportOnce(r, ct) {
  r.setContentType(ct);
  const t0 = now();
  const out = await r.metrics();
  return [Number(now() - t0), out];
}
const info = {};
const ks = {};
for (const [s, r] of Object.entries(regs))
  for (const [f, ct] of Object.entries(fmts)) {
    await exportOnce(r, ct); // warm-up
    const [dt, out] = await exportOnce(r, ct);
    info[`${s} ${f}`] = [Buffer.byteLength(out), countSamples(out), out.endsWith('# EOF\n')];
    ks[`${s} ${f}`] = Math.max(1, Math.min(20, Math.floor((seconds * 1e9) / Math.max(dt, 1))));
  }
const ex = Object.fromEntries(Object.keys(info).map((k) => [k, []]));
for (let run = 0; run < runs; run++)
  for (const [s, r] of Object.entries(regs))
    for (const [f, ct] of Object.entries(fmts)) {
      const key = `${s} ${f}`;
      let total = 0;
      for (let i = 0; i < ks[key]; i++) total += (await exportOnce(r, ct))[0];
      ex[key].push(total / ks[key]);
    }
for (const [key, xs] of Object.entries(ex)) {
  const [s, f] = key.split(' ');
  const med = median(xs);
  const mn = Math.min(...xs);
  const [bytes, series, eof] = info[key];
  console.log(
    `bench peer=prom-client export scenario=${s} format=${f} exports_per_run=${ks[key]} runs=${runs} ` +
      `median_ms=${(med / 1e6).toFixed(3)} min_ms=${(mn / 1e6).toFixed(3)} bytes=${bytes} series=${series}` +
      (f === 'openmetrics' ? ` ends_with_eof=${eof ? 1 : 0}` : ''),
  );
  console.log(
    `compare-export impl=prom-client lang=Node scenario=${s} format=${f} ms=${(med / 1e6).toFixed(3)} ` +
      `min_ms=${(mn / 1e6).toFixed(3)} bytes=${bytes} series=${series}`,
  );
}
if (sink === 0.5) console.log(''); // keep it alive
