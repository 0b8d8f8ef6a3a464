// bench/peers/cockatiel_breaker_bench.mjs - bench_breaker's scenarios with cockatiel's circuit breaker.
//
//   circuitBreaker(handleAll, { halfOpenAfter: 3600e3, breaker: new ConsecutiveBreaker(5) })
//
// closed: `await policy.execute(op)` of a synchronous no-op (it returns a value) on a
// closed breaker.  cockatiel's execute is async, so the fair baseline is `await direct()`
// of an async function that returns the same value; the plain synchronous call is
// printed too, for reference.
// open reject: the same execute on a breaker opened by 5 failures (halfOpenAfter one
// hour, so it stays open); the call rejects with BrokenCircuitError, which is caught.
// Prints ns/op (median and min of the runs) in bench_breaker's line format ("bench ...",
// "compare-breaker ...", "compare-reject ...").
//
// Exits 3 when cockatiel is not installed in bench/peers/node_modules (the caller reports
// the peer as skipped).
//
// Usage: node cockatiel_breaker_bench.mjs [--runs R] [--seconds S]
let cockatiel;
try {
  cockatiel = await import('cockatiel');
} catch (e) {
  console.log(`peer cockatiel: skipped (cannot import cockatiel: ${e.code || e.message})`);
  process.exit(3);
}
import { readFileSync } from 'node:fs';

const { circuitBreaker, handleAll, ConsecutiveBreaker, CircuitState, BrokenCircuitError } = cockatiel;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
};
const runs = opt('--runs', 7);
const seconds = opt('--seconds', 0.25);

const newPolicy = () => circuitBreaker(handleAll, { halfOpenAfter: 3600e3, breaker: new ConsecutiveBreaker(5) });
const closed = newPolicy();
const open = newPolicy();
const op = () => 42;
const failing = () => {
  throw new Error('down');
};
async function direct() {
  return op();
}

for (let i = 0; i < 5; i++) {
  try {
    await open.execute(failing);
  } catch {
    /* expected */
  }
}
if (open.state !== CircuitState.Open) throw new Error(`cockatiel breaker is ${open.state} after 5 failures, not open`);
if ((await closed.execute(op)) !== 42) throw new Error('cockatiel execute returned the wrong value');

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
async function loopExecute(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) sink += await closed.execute(op);
  return Number(now() - t0);
}
async function loopReject(n) {
  const t0 = now();
  for (let i = 0; i < n; i++) {
    try {
      sink += await open.execute(op);
      wrong++;
    } catch (e) {
      if (e instanceof BrokenCircuitError) rejected++;
      else wrong++;
    }
  }
  return Number(now() - t0);
}

const variants = [
  ['sync_direct', loopSync],
  ['async_direct', loopAsyncDirect],
  ['execute_closed', loopExecute],
  ['execute_open_reject', loopReject],
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
  readFileSync(new URL('./node_modules/cockatiel/package.json', import.meta.url), 'utf8'),
).version;
console.log(`peer cockatiel: cockatiel ${version} on Node ${process.version}`);

const iters = {};
for (const [name, fn] of variants) iters[name] = await calibrate(fn); // also warms the JIT
const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++)
  for (const [name, fn] of variants) samples[name].push((await fn(iters[name])) / iters[name]);
if (wrong) throw new Error(`${wrong} calls on the open cockatiel breaker were not refused with BrokenCircuitError`);
if (closed.state !== CircuitState.Closed) throw new Error('the closed cockatiel breaker did not stay closed');

const st = {};
for (const [name] of variants) {
  st[name] = [median(samples[name]), Math.min(...samples[name])];
  const [med, min] = st[name];
  console.log(
    `bench peer=cockatiel variant=${name} iters=${iters[name]} runs=${runs} median_ns=${med.toFixed(1)} ` +
      `min_ns=${min.toFixed(1)} ops_per_s=${(1e9 / med).toFixed(0)}`,
  );
}
const cmp = (variant, d, w) =>
  console.log(
    `compare-breaker impl=cockatiel lang=Node variant=${variant} direct_ns=${d[0].toFixed(1)} wrapper_ns=${w[0].toFixed(1)} ` +
      `overhead_ns=${(w[0] - d[0]).toFixed(1)} direct_min_ns=${d[1].toFixed(1)} wrapper_min_ns=${w[1].toFixed(1)} ` +
      `overhead_min_ns=${(w[1] - d[1]).toFixed(1)}`,
  );
cmp('execute_vs_async_direct', st.async_direct, st.execute_closed);
cmp('execute_vs_sync_direct', st.sync_direct, st.execute_closed);
const rj = st.execute_open_reject;
console.log(`compare-reject impl=cockatiel lang=Node variant=execute_open ns=${rj[0].toFixed(1)} min_ns=${rj[1].toFixed(1)}`);
if (sink === 0.5 || rejected === 0.5) console.log(''); // keep them alive
