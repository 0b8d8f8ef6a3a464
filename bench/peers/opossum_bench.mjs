// bench/peers/opossum_bench.mjs - bench_breaker's scenarios with opossum's CircuitBreaker.
//
// closed: `await breaker.fire()` of a synchronous no-op (it returns a value; opossum
// wraps it in a promise) on a closed breaker, with opossum's default options (a 10 s
// timeout, so every fire arms and clears a timer) and with `timeout: false`.  fire is
// async, so the fair baseline is `await direct()` of an async function that returns the
// same value; the plain synchronous call is printed too, for reference.
// open reject: the same fire on a breaker opened with breaker.open() (resetTimeout one
// hour, so it stays open); the call rejects with code EOPENBREAKER, which is caught.
// Prints ns/op (median and min of the runs) in bench_breaker's line format ("bench ...",
// "compare-breaker ...", "compare-reject ...").
//
// Exits 3 when opossum is not installed in bench/peers/node_modules (the caller reports
// the peer as skipped).
//
// Usage: node opossum_bench.mjs [--runs R] [--seconds S]
let CircuitBreaker;
try {
  CircuitBreaker = (await import('opossum')).default;
} catch (e) {
  console.log(`peer opossum: skipped (cannot import opossum: ${e.code || e.message})`);
  process.exit(3);
}
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
};
const runs = opt('--runs', 7);
const seconds = opt('--seconds', 0.25);

const op = () => 42;
async function direct() {
  return op();
}
const closedDefault = new CircuitBreaker(op, { resetTimeout: 3600e3 });
const closedNoTimeout = new CircuitBreaker(op, { resetTimeout: 3600e3, timeout: false });
const open = new CircuitBreaker(op, { resetTimeout: 3600e3 });
open.open();
if (!open.opened) throw new Error('opossum breaker did not open');
if ((await closedDefault.fire()) !== 42 || (await closedNoTimeout.fire()) !== 42)
  throw new Error('opossum fire returned the wrong value');

let sink = 0;
let rejected = 0;
let wrong = 0;
const now = () => process.hrtime.bigint();

async function loopSync(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) sink += op();
  return Number(now() - t0);
}
async function loopAsyncDirect(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) sink += await direct();
  return Number(now() - t0);
}
const loopFire = (breaker) => async (n) => {
  const t0 = now();
  for (let i = 0; i < n; i++) sink += await breaker.fire();
  return Number(now() - t0);
};
async function loopReject(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) {
    try {
      sink += await open.fire();
      wrong++;
    } catch (e) {
      if (e && e.code === 'EOPENBREAKER') rejected++;
      else wrong++;
    }
  }
  return Number(now() - t0);
}

const variants = [
  ['sync_direct', loopSync],
  ['async_direct', loopAsyncDirect],
  ['fire_closed_default', loopFire(closedDefault)],
  ['fire_closed_no_timeout', loopFire(closedNoTimeout)],
  ['fire_open_reject', loopReject],
];

async function calibrate(fn) {
  let n = 1000;
  for (;;) {
    const ns = await fn(n);
    if (ns >= (seconds * 1e9) / 4 || n >= 1 << 26) return Math.max(1000, Math.floor((n * seconds * 1e9) / ns));
    n *= 4;
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const version = JSON.parse(
  readFileSync(new URL('./node_modules/opossum/package.json', import.meta.url), 'utf8'),
).version;
console.log(`peer opossum: opossum ${version} on Node ${process.version}`);

const iters = {};
for (const [name, fn] of variants) iters[name] = await calibrate(fn); // also warms the JIT
const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++)
  for (const [name, fn] of variants) samples[name].push((await fn(iters[name])) / iters[name]);
if (wrong) throw new Error(`${wrong} fires on the open opossum breaker were not refused with EOPENBREAKER`);
if (!closedDefault.closed || !closedNoTimeout.closed) throw new Error('a closed opossum breaker did not stay closed');

const st = {};
for (const [name] of variants) {
  st[name] = [median(samples[name]), Math.min(...samples[name])];
  const [med, min] = st[name];
  console.log(
    `bench peer=opossum variant=${name} iters=${iters[name]} runs=${runs} median_ns=${med.toFixed(1)} ` +
      `min_ns=${min.toFixed(1)} ops_per_s=${(1e9 / med).toFixed(0)}`,
  );
}
const cmp = (variant, d, w) =>
  console.log(
    `compare-breaker impl=opossum lang=Node variant=${variant} direct_ns=${d[0].toFixed(1)} wrapper_ns=${w[0].toFixed(1)} ` +
      `overhead_ns=${(w[0] - d[0]).toFixed(1)} direct_min_ns=${d[1].toFixed(1)} wrapper_min_ns=${w[1].toFixed(1)} ` +
      `overhead_min_ns=${(w[1] - d[1]).toFixed(1)}`,
  );
cmp('fire_default_vs_async_direct', st.async_direct, st.fire_closed_default);
cmp('fire_no_timeout_vs_async_direct', st.async_direct, st.fire_closed_no_timeout);
cmp('fire_default_vs_sync_direct', st.sync_direct, st.fire_closed_default);
const rj = st.fire_open_reject;
console.log(`compare-reject impl=opossum lang=Node variant=fire_open ns=${rj[0].toFixed(1)} min_ns=${rj[1].toFixed(1)}`);
for (const b of [closedDefault, closedNoTimeout, open]) b.shutdown(); // stops their timers, so node exits
if (sink === 0.5 || rejected === 0.5) console.log(''); // keep them alive
