// bench/peers/cockatiel_bench.mjs - the retry_success_first scenario with cockatiel.
//
// An op that succeeds at once (returns a value), run through
//   retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
// with `await policy.execute(() => value)`.  cockatiel's execute is async, so
// the fair baseline is `await direct()` of an async function that returns the
// same value; the plain synchronous call is printed too, for reference.
// Prints ns/op (median and min of the runs) and the overhead, in the same
// line format as bench_retry ("bench ...", "compare ...").
//
// Exits 3 when cockatiel is not installed in bench/peers/node_modules (the
// caller reports the peer as skipped).
//
// Usage: node cockatiel_bench.mjs [--runs R] [--seconds S]
let cockatiel;
try {
  cockatiel = await import('cockatiel');
} catch (e) {
  console.log(`peer cockatiel: skipped (cannot import cockatiel: ${e.code || e.message})`);
  process.exit(3);
}
import { readFileSync } from 'node:fs';

const { retry, handleAll, ExponentialBackoff } = cockatiel;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
};
const runs = opt('--runs', 7);
const seconds = opt('--seconds', 0.25);

const policy = retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() });
const op = () => 42;
async function direct() {
  return op();
}

let sink = 0;
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
  for (let i = 0; i < n; i++) sink += await policy.execute(op);
  return Number(now() - t0);
}

const variants = [
  ['sync_direct', loopSync],
  ['async_direct', loopAsyncDirect],
  ['execute', loopExecute],
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

if ((await policy.execute(op)) !== 42) throw new Error('cockatiel execute returned the wrong value');
const version = JSON.parse(
  readFileSync(new URL('./node_modules/cockatiel/package.json', import.meta.url), 'utf8'),
).version;
console.log(`peer cockatiel: cockatiel ${version} on Node ${process.version}`);

const iters = {};
for (const [name, fn] of variants) iters[name] = await calibrate(fn); // also warms the JIT
const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++)
  for (const [name, fn] of variants) samples[name].push((await fn(iters[name])) / iters[name]);

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
    `compare impl=cockatiel lang=Node variant=${variant} direct_ns=${d[0].toFixed(1)} wrapper_ns=${w[0].toFixed(1)} ` +
      `overhead_ns=${(w[0] - d[0]).toFixed(1)} direct_min_ns=${d[1].toFixed(1)} wrapper_min_ns=${w[1].toFixed(1)} ` +
      `overhead_min_ns=${(w[1] - d[1]).toFixed(1)}`,
  );
cmp('execute_vs_async_direct', st.async_direct, st.execute);
cmp('execute_vs_sync_direct', st.sync_direct, st.execute);
if (sink === 0.5) console.log(''); // keep sink alive
