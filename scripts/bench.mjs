#!/usr/bin/env node
// `npm run bench [-- <name>...]`: sets up what the benchmarks need (packages, nats-server, build),
// starts one nats-server and one embedded PostgreSQL in a temp directory, then runs the named
// benchmarks (dist/bench/<name>.bench.js) one after the other, or all of them when none is named.
// NATS_URL / DATABASE_URL from the environment are ignored on purpose: numbers are only comparable
// against servers started the same way every time.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useSupportedNode } from './node.mjs';

await useSupportedNode(); // Node ≥ 22: under an older one, re-run under .tools/node (Node 24)

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));

const setup = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], { stdio: 'inherit' });
if (setup.status !== 0) process.exit(setup.status ?? 1);

const benchDir = join(root, 'dist', 'bench');
const available = existsSync(benchDir)
  ? readdirSync(benchDir)
      .filter((f) => f.endsWith('.bench.js'))
      .map((f) => f.slice(0, -'.bench.js'.length))
      .sort()
  : [];
const unknown = names.filter((n) => !available.includes(n));
if (unknown.length > 0 || available.length === 0) {
  process.stderr.write(
    `unknown benchmark(s): ${unknown.join(', ') || '(none built)'}; available: ${available.join(', ')}\n`,
  );
  process.exit(2);
}
const selected = names.length > 0 ? names : available;

const { startNatsServer, freePort } = await import(
  pathToFileURL(join(root, 'dist/libs/nats/src/index.js')).href
);
const { startEmbeddedPostgres } = await import(
  pathToFileURL(join(root, 'dist/libs/database/src/index.js')).href
);

const work = mkdtempSync(join(tmpdir(), 'runway-bench-'));
chmodSync(work, 0o755); // the embedded PostgreSQL runs as the postgres user when we are root
process.stderr.write(`[bench] starting nats-server and PostgreSQL under ${work}\n`);
const nats = await startNatsServer({ storeDir: join(work, 'nats') });
const pg = await startEmbeddedPostgres({ dir: join(work, 'pg'), port: await freePort() });

let child;
const forward = (sig) => child?.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);

let code = 0;
try {
  for (const name of selected) {
    process.stderr.write(`[bench] ${name}\n`);
    const c = await new Promise((resolve) => {
      child = spawn(process.execPath, ['--enable-source-maps', join(benchDir, `${name}.bench.js`)], {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, NATS_URL: nats.url, DATABASE_URL: pg.url, RUNWAY_BENCH_WORK: work },
      });
      child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0)));
    });
    if (c !== 0) code = c;
  }
} finally {
  await pg.stop().catch(() => undefined);
  await nats.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);
