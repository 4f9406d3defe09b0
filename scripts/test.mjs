#!/usr/bin/env node
// `npm test`: sets up everything the tests need (packages, nats-server, build, Python), starts one
// nats-server and one embedded PostgreSQL for the run (both with authentication, as `npm start`'s:
// NATS_URL carries the `runway` user's password, DATABASE_URL the PostgreSQL superuser's), then
// runs every test file with node:test.
// Each test file makes its own stream, subject prefix and database, so files run in parallel.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useSupportedNode } from './node.mjs';

await useSupportedNode(); // Node ≥ 22: under an older one, re-run under .tools/node (Node 24)

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);

const setupArgs = [join(root, 'scripts', 'setup.mjs'), '--python', '--deploy-schemas', '--browser'];
const setup = spawnSync(process.execPath, setupArgs, { stdio: 'inherit' });
if (setup.status !== 0) process.exit(setup.status ?? 1);

const { startNatsServer, freePort } = await import(
  pathToFileURL(join(root, 'dist/libs/nats/src/index.js')).href
);
const { startEmbeddedPostgres } = await import(
  pathToFileURL(join(root, 'dist/libs/database/src/index.js')).href
);

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (/\.(spec|test)\.js$/.test(name)) out.push(p);
  }
  return out;
}

/**
 * Files start in this order, four at a time: the long integration files first (real CLIs, clusters,
 * schedulers that wait for fire times), the short unit specs last, where they fill the gaps while
 * the last long files finish. Sorting by name put test/scheduling and test/web at the very end.
 */
const SLOW_FIRST = [
  'e2e',
  'local',
  'durability',
  'jobs',
  'scheduling',
  'execution',
  'interactive',
  'alerting',
  'events',
];
function weight(file) {
  const parts = relative(join(root, 'dist'), file).split(sep);
  if (parts[0] !== 'test') return SLOW_FIRST.length + 2;
  const at = SLOW_FIRST.indexOf(parts[1] ?? '');
  return at === -1 ? SLOW_FIRST.length : at;
}

const files = ['libs', 'services', 'test', 'deploy']
  .map((d) => join(root, 'dist', d))
  .filter((d) => {
    try {
      return statSync(d).isDirectory();
    } catch {
      return false;
    }
  })
  .flatMap((d) => findTests(d))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)))
  .sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
if (files.length === 0) {
  process.stderr.write('no test files found\n');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'runway-test-'));
chmodSync(work, 0o755); // the embedded PostgreSQL runs as the postgres user when we are root
process.stderr.write(`[test] starting nats-server and PostgreSQL under ${work}\n`);
const nats = await startNatsServer({ storeDir: join(work, 'nats') });
const pg = await startEmbeddedPostgres({ dir: join(work, 'pg'), port: await freePort() });

let code = 1;
try {
  code = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--enable-source-maps', join(root, 'scripts', 'run-tests.mjs'), ...files],
      {
        cwd: root,
        stdio: 'inherit',
        env: {
          ...process.env,
          NATS_URL: nats.url,
          DATABASE_URL: pg.url,
          RUNWAY_PYTHON: join(root, '.venv', 'bin', 'python'),
          RUNWAY_TEST_WORK: work,
          // each test file runs in its own process: stack traces point at the TypeScript sources
          NODE_OPTIONS: [process.env.NODE_OPTIONS, '--enable-source-maps'].filter(Boolean).join(' '),
        },
      },
    );
    const forward = (sig) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0)));
  });
} finally {
  await pg.stop().catch(() => undefined);
  await nats.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);
