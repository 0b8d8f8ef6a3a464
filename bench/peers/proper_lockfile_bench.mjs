// bench/peers/proper_lockfile_bench.mjs - ndjson_append_locked with proper-lockfile.
//
// Appends the same record line that bench_files appends (DIR/record.ndjson)
// to a log held open with O_APPEND (fs.writeSync per record), inside a
// proper-lockfile lock of the log:
//   async:  release = await lock(log, { retries: 0 }); writeSync; await release()
//   sync:   lockSync(log); writeSync; unlockSync(log)
// proper-lockfile locks by mkdir("<log>.lock") (atomic on local and network
// file systems), refreshes the directory's mtime on a timer while held, and
// treats a lock older than `stale` (10 s) as abandoned; unlock is rmdir.
// Without sync (class=append_nosync) and with fs.fdatasyncSync after each write
// (class=append_sync).  For context a node:fs floor without any lock is timed
// too ("node_floor_nolock": node has no fcntl lock in its standard library).
//
// Every op is timed on its own; p50/p90/p99 are nearest-rank percentiles.
// Exits 3 when proper-lockfile is not installed in bench/peers/node_modules.
//
// Usage: node proper_lockfile_bench.mjs --dir DIR [--ops N] [--ops-sync N]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

let plf;
try {
  plf = (await import('proper-lockfile')).default;
} catch (e) {
  console.log(`peer proper-lockfile: skipped (cannot import proper-lockfile: ${e.code || e.message})`);
  process.exit(3);
}
const require = createRequire(import.meta.url);
const version = require('proper-lockfile/package.json').version;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const dir = opt('--dir', null);
const opsNosync = Number(opt('--ops', 20000));
const opsSync = Number(opt('--ops-sync', 2000));
if (!dir) {
  console.error('usage: proper_lockfile_bench.mjs --dir DIR [--ops N] [--ops-sync N]');
  process.exit(2);
}
const rec = fs.readFileSync(path.join(dir, 'record.ndjson'));
const pct = (s, p) => s[Math.max(0, Math.floor((s.length * p + 99) / 100) - 1)];
const now = () => process.hrtime.bigint();
console.log(`peer proper-lockfile version=${version} node=${process.version}`);

async function run(sync, ops) {
  const d = path.join(dir, 'peer_proper_lockfile', sync ? 'sync' : 'nosync');
  fs.mkdirSync(d, { recursive: true });
  const names = ['lock_async', 'lockSync', 'node_floor_nolock'];
  const logs = {}, fds = {};
  for (const v of names) {
    logs[v] = path.join(d, `${v}.ndjson`);
    fs.rmSync(logs[v], { force: true });
    fs.rmSync(`${logs[v]}.lock`, { force: true, recursive: true });
    fds[v] = fs.openSync(logs[v], 'a', 0o644);
  }
  const put = (v) => {
    fs.writeSync(fds[v], rec);
    if (sync) fs.fdatasyncSync(fds[v]);
  };
  const fns = {
    lock_async: async () => {
      const release = await plf.lock(logs.lock_async, { retries: 0, stale: 10000 });
      try { put('lock_async'); } finally { await release(); }
    },
    lockSync: async () => {
      plf.lockSync(logs.lockSync, { stale: 10000 });
      try { put('lockSync'); } finally { plf.unlockSync(logs.lockSync); }
    },
    node_floor_nolock: async () => put('node_floor_nolock'),
  };
  const samples = Object.fromEntries(names.map((v) => [v, []]));
  const warm = Math.max(5, Math.floor(ops / 10));
  for (let i = -warm; i < ops; i++) {
    for (let k = 0; k < names.length; k++) {
      const v = names[(i + warm + k) % names.length];
      const t0 = now();
      await fns[v]();
      const t1 = now();
      if (i >= 0) samples[v].push(Number(t1 - t0));
    }
  }
  for (const v of names) fs.closeSync(fds[v]);
  const ok = names.every((v) => fs.statSync(logs[v]).size === (ops + warm) * rec.length);
  console.log(`check peer proper-lockfile sync=${sync ? 1 : 0} sizes_match=${ok ? 1 : 0} ok=${ok ? 1 : 0}`);
  const cls = sync ? 'append_sync' : 'append_nosync';
  for (const v of names) {
    const s = samples[v].sort((a, b) => a - b);
    const mean = Math.round(s.reduce((a, b) => a + b, 0) / s.length);
    const line = `impl=proper-lockfile lang=Node variant=${v} ops=${s.length} p50_ns=${pct(s, 50)} p90_ns=${pct(s, 90)} p99_ns=${pct(s, 99)}`;
    console.log(`files op=ndjson_append_locked class=${cls} ${line} mean_ns=${mean} min_ns=${s[0]}`);
    console.log(`compare-files class=${cls} ${line}`);
  }
  return ok;
}

const ok = (await run(false, opsNosync)) && (await run(true, opsSync));
process.exit(ok ? 0 : 1);
