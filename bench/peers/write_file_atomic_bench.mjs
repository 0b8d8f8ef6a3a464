// bench/peers/write_file_atomic_bench.mjs - json_atomic_write_1k with write-file-atomic.
//
// Replaces a file with the same 1 KiB JSON text that bench_files writes
// (DIR/doc.json), with writeFileSync(path, buf) and `await writeFile(path,
// buf)` (the async form).  Defaults: fsync of the temp file is on, then
// chown/chmod to the old file's owner and mode, then rename; the directory is
// NOT fsynced, so it is in resil's FILE durability class (class=atomic_FILE).
// No inter-process lock (the async form serialises writes to one path within
// the process only).  For context, the same syscalls written by hand with
// node:fs (openSync 'wx', writeSync, fsyncSync, closeSync, renameSync) are
// timed too ("node_floor"), interleaved op by op.
//
// Every op is timed on its own (process.hrtime.bigint); p50/p90/p99 are
// nearest-rank percentiles.  Exits 3 when write-file-atomic is not installed
// in bench/peers/node_modules.
//
// Usage: node write_file_atomic_bench.mjs --dir DIR [--ops N]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

let wfa;
try {
  wfa = (await import('write-file-atomic')).default;
} catch (e) {
  console.log(`peer write-file-atomic: skipped (cannot import write-file-atomic: ${e.code || e.message})`);
  process.exit(3);
}
const require = createRequire(import.meta.url);
const version = require('write-file-atomic/package.json').version;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const dir = opt('--dir', null);
const ops = Number(opt('--ops', 2000));
if (!dir) {
  console.error('usage: write_file_atomic_bench.mjs --dir DIR [--ops N]');
  process.exit(2);
}

const data = fs.readFileSync(path.join(dir, 'doc.json'));
const base = path.join(dir, 'peer_write_file_atomic');
const names = ['writeFileSync', 'writeFile_async', 'node_floor'];
const targets = {};
for (const v of names) {
  fs.mkdirSync(path.join(base, v), { recursive: true });
  targets[v] = path.join(base, v, 'state.json');
  fs.writeFileSync(targets[v], data);
}
const floorTmp = path.join(base, 'node_floor', '.state.json.tmp');

const fns = {
  writeFileSync: async () => wfa.sync(targets.writeFileSync, data),
  writeFile_async: async () => wfa(targets.writeFile_async, data),
  node_floor: async () => {
    const fd = fs.openSync(floorTmp, 'wx', 0o644);
    fs.writeSync(fd, data, 0, data.length, 0);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(floorTmp, targets.node_floor);
  },
};

const samples = Object.fromEntries(names.map((v) => [v, []]));
const warm = Math.max(5, Math.floor(ops / 10));
const now = () => process.hrtime.bigint();
for (let i = -warm; i < ops; i++) {
  for (let k = 0; k < names.length; k++) {
    const v = names[(i + warm + k) % names.length];
    const t0 = now();
    await fns[v]();
    const t1 = now();
    if (i >= 0) samples[v].push(Number(t1 - t0));
  }
}
const ok = names.every((v) => fs.readFileSync(targets[v]).equals(data));
console.log(`check peer write-file-atomic content_matches=${ok ? 1 : 0} ok=${ok ? 1 : 0}`);
console.log(`peer write-file-atomic version=${version} node=${process.version}`);

const pct = (s, p) => s[Math.max(0, Math.floor((s.length * p + 99) / 100) - 1)];
for (const v of names) {
  const s = samples[v].sort((a, b) => a - b);
  const mean = Math.round(s.reduce((a, b) => a + b, 0) / s.length);
  const line = `impl=write-file-atomic lang=Node variant=${v} ops=${s.length} p50_ns=${pct(s, 50)} p90_ns=${pct(s, 90)} p99_ns=${pct(s, 99)}`;
  console.log(`files op=json_atomic_write_1k class=atomic_FILE ${line} mean_ns=${mean} min_ns=${s[0]}`);
  console.log(`compare-files class=atomic_FILE ${line}`);
}
process.exit(ok ? 0 : 1);
