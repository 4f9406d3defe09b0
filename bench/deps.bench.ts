/**
 * `npm run bench -- deps`: what a deployment's own dependencies cost a run (docs/dependencies.md),
 * on a whole Runway with the run sandbox, one embedded worker.
 *
 * 1. Baseline: BENCH_DEPS_RUNS runs of a deployment that declares nothing (the configured interpreter).
 * 2. Cold: the first run of a deployment whose requirements.txt declares dlt + duckdb
 *    (BENCH_DEPS_REQUIREMENTS), with an empty environment cache and an empty uv cache: uv resolves,
 *    downloads from the index and installs.
 * 3. Warm: BENCH_DEPS_RUNS more runs of it (the environment is reused).
 * Each: RunRequested stored → process spawned (the runs row's created_at → started_at), the setup
 * phase's own duration (its RunSetUp), and RunRequested → run completed. Warm overhead = warm p50 −
 * baseline p50 of "→ spawned" (target ≤ 1 s). Prints one table per install network
 * (BENCH_DEPS_NETWORK=index|host|both, default both: `index` = the install step reaches PyPI through
 * the index-only proxy, `host` = the host's network), each on a fresh Runway (so both are cold).
 */
import { sql } from 'kysely';
import { createKysely } from '#libs/database';
import { startTestStack } from '../test/support/stack.js';
import { createBatchJob, uploadPackage, waitForStatus } from '../test/jobs/support.js';

const RUNS = Number(process.env.BENCH_DEPS_RUNS ?? 5);
const REQUIREMENTS = process.env.BENCH_DEPS_REQUIREMENTS ?? 'dlt[duckdb]==1.26.0';
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
type Json = Record<string, unknown>;

async function measure(network: 'index' | 'host'): Promise<void> {
  const stack = await startTestStack({
    RUNWAY_EMBEDDED_WORKERS: '1',
    RUNWAY_WORKER_SLOTS: '2',
    RUNWAY_PYTHON: process.env.RUNWAY_PYTHON ?? 'python3',
    RUNWAY_DEPS_NETWORK: network,
  });
  const db = createKysely<unknown>({ url: stack.env.databaseUrl, max: 2 });
  try {
    const ws = stack.workspaceId;
    const one = async (name: string) => {
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/runs`, {
        script_id_or_name_or_secret: name,
        profile: null,
      });
      if (r.status !== 201) throw new Error(`POST runs: ${r.status} ${r.text}`);
      const id = (r.json as Json).id as string;
      const done = await waitForStatus(stack, id, ['completed', 'failed'], 900_000);
      if (done.status !== 'completed') {
        const logs = await stack.call('GET', `/api/v1/workspaces/${ws}/runs/${id}/logs`);
        throw new Error(`run ${id} ${String(done.status)}: ${logs.text.slice(-3000)}`);
      }
      const row = (
        await sql<{
          created_at: Date;
          started_at: Date;
          updated_at: Date;
        }>`SELECT created_at, started_at, updated_at FROM runs WHERE id = ${id}`.execute(db)
      ).rows[0]!;
      const setup = (done.status_timeline as Json[])
        .map((t) => String(t.reason))
        .find((r) => r.startsWith('setup:'));
      const setupMs = setup ? Number(/in (\d+) ms$/.exec(setup)?.[1] ?? NaN) : 0;
      return {
        spawnMs: row.started_at.getTime() - row.created_at.getTime(),
        totalMs: row.updated_at.getTime() - row.created_at.getTime(),
        setupMs,
        hit: setup?.includes('cache hit') ?? false,
      };
    };

    await uploadPackage(stack, 'deployments', [
      { path: 'plain.py', content: 'import sys\nprint(sys.version)\n' },
    ]);
    await createBatchJob(stack, 'plain.py');
    log(`baseline: ${RUNS} runs without dependencies`);
    const base = [];
    for (let i = 0; i < RUNS; i++) base.push(await one('plain.py'));

    await uploadPackage(stack, 'deployments', [
      { path: 'requirements.txt', content: `${REQUIREMENTS}\n` },
      {
        path: 'with_deps.py',
        content: 'import dlt, duckdb\nprint("dlt", dlt.__version__, "duckdb", duckdb.__version__)\n',
      },
    ]);
    await createBatchJob(stack, 'with_deps.py');
    log(`cold: the first run declaring ${REQUIREMENTS} (empty caches; uv downloads from the index)`);
    const cold = await one('with_deps.py');
    if (cold.hit) throw new Error('the cold run found an environment');
    log(`warm: ${RUNS} more runs`);
    const warm = [];
    for (let i = 0; i < RUNS; i++) warm.push(await one('with_deps.py'));
    if (!warm.every((w) => w.hit)) throw new Error('a warm run did not reuse the environment');

    const row = (label: string, xs: { spawnMs: number; setupMs: number; totalMs: number }[]) =>
      `| ${label.padEnd(34)} | ${String(median(xs.map((x) => x.setupMs))).padStart(9)} | ${String(
        median(xs.map((x) => x.spawnMs)),
      ).padStart(19)} | ${String(median(xs.map((x) => x.totalMs))).padStart(21)} |`;
    const overhead = median(warm.map((w) => w.spawnMs)) - median(base.map((b) => b.spawnMs));
    const table = [
      `\ndependencies: ${REQUIREMENTS}; install network: ${network}; medians (ms), runs in the bubblewrap sandbox`,
      `| ${'run'.padEnd(34)} | setup ms | requested → spawned | requested → completed |`,
      `| ${'-'.repeat(34)} | --------: | ------------------: | --------------------: |`,
      row(`no dependencies (${RUNS} runs)`, base),
      row('cold: first run, empty caches', [cold]),
      row(`warm: cache hit (${RUNS} runs)`, warm),
      `\nwarm overhead vs no dependencies (requested → spawned): ${overhead} ms (target ≤ 1000 ms)`,
    ].join('\n');
    process.stdout.write(`${table}\n`);
    if (overhead > 1000) process.exitCode = 1;
  } finally {
    await db.destroy();
    await stack.stop();
  }
}

const which = process.env.BENCH_DEPS_NETWORK ?? 'both';
for (const network of ['index', 'host'] as const)
  if (which === 'both' || which === network) {
    log(`install network: ${network}`);
    await measure(network);
  }
