/**
 * `npm run bench -- runs`: run start latency and throughput on a whole Runway (in this process, on
 * the nats-server + PostgreSQL that scripts/bench.mjs started), with 2 embedded workers of 4 slots.
 *
 * 1. Latency, 200 runs one after the other of a `python -c pass`-like script: from the 201 of
 *    `POST runs` to the user process spawned (the run's time_started), and to the process finished
 *    (time_ended). Interpreter start is in the second number only.
 * 2. Throughput: 500 trivial runs requested 16 at a time; runs/s until all completed, and a check
 *    that none was lost or executed twice (a marker line per execution, one `starting` per run).
 * 3. A real dlt pipeline (test/fixtures/dlt-workspace: nested records into duckdb), BENCH_DLT_RUNS
 *    runs one after the other: RunRequested stored → process spawned, and process exited → run
 *    completed (the `finalizing` step: the pipeline report). Every run must report its pipeline.
 * Both with the run sandbox (bubblewrap, the default) and without it (RUNWAY_SANDBOX=off);
 * BENCH_RUNS_SANDBOX=on|off measures one of them; BENCH_RUNS_PARTS=latency,throughput,dlt picks
 * the parts (all by default). Prints ONE table per mode.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { createKysely } from '#libs/database';
import { startTestStack } from '../test/support/stack.js';
import { uploadPackage } from '../test/jobs/support.js';

const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 200);
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 500);
const DLT_RUNS = Number(process.env.BENCH_DLT_RUNS ?? 20);
const PARTS = new Set((process.env.BENCH_RUNS_PARTS ?? 'latency,throughput,dlt').split(','));
const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'dlt-workspace');
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
type Json = Record<string, unknown>;

async function measure(sandbox: 'on' | 'off'): Promise<void> {
  const stack = await startTestStack({
    RUNWAY_EMBEDDED_WORKERS: '2',
    RUNWAY_WORKER_SLOTS: '4',
    RUNWAY_PYTHON: process.env.RUNWAY_PYTHON ?? 'python3',
    RUNWAY_SANDBOX: sandbox,
  });
  const db = createKysely<unknown>({ url: stack.env.databaseUrl, max: 4 });
  let marks = '';
  try {
    log(`sandbox ${sandbox}`);
    const ws = stack.workspaceId;
    await uploadPackage(stack, 'deployments', [
      { path: 'pass.py', content: 'pass\n' },
      {
        path: 'mark.py',
        // The job's dlt data dir: the one place a sandboxed run writes that outlives it.
        content: `import os\nwith open(os.path.join(os.environ["DLT_DATA_DIR"], "marks"), "a") as f:\n    f.write(os.environ["RUNTIME__RUN_ID"] + "\\n")\n`,
      },
    ]);
    for (const name of ['pass.py', 'mark.py']) {
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
        name,
        description: '',
        entry_point: name,
        script_type: 'batch',
      });
      if (r.status !== 201) throw new Error(r.text);
      if (name === 'mark.py')
        marks = join(
          stack.dataDir,
          'workspaces',
          ws,
          'jobs',
          (r.json as Json).id as string,
          'data',
          'prod',
          'marks',
        );
    }
    const post = async (name: string) => {
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/runs`, {
        script_id_or_name_or_secret: name,
        profile: null,
      });
      if (r.status !== 201) throw new Error(`POST runs: ${r.status} ${r.text}`);
      return { id: (r.json as Json).id as string, at: Date.now() };
    };
    const times = async (id: string) =>
      (
        await sql<{
          started_at: Date | null;
          ended_at: Date | null;
          created_at: Date;
          status: string;
        }>`SELECT started_at, ended_at, created_at, status FROM runs WHERE id = ${id}`.execute(db)
      ).rows[0];

    const rows: [string, number, number][] = [];
    let summary = '';
    if (PARTS.has('latency')) {
      // 1. Latency.
      log(`latency: ${LATENCY_RUNS} runs one after the other`);
      const spawn: number[] = [];
      const finished: number[] = [];
      const api: number[] = [];
      const fromRequest: number[] = [];
      // One request at a time, 100 ms apart so that no run waits for a slot. A run's times are known
      // once it reported `running` (after its 2.5 s `starting` hold), so they are read at the end.
      const posted: { id: string; at: number }[] = [];
      for (let i = 0; i < LATENCY_RUNS; i++) {
        const t0 = performance.now();
        posted.push(await post('pass.py'));
        api.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 100));
        if ((i + 1) % 50 === 0) log(`  ${i + 1} runs`);
      }
      for (const { id, at } of posted) {
        for (;;) {
          const t = await times(id);
          if (t?.ended_at && t.started_at) {
            spawn.push(t.started_at.getTime() - at);
            fromRequest.push(t.started_at.getTime() - t.created_at.getTime());
            finished.push(t.ended_at.getTime() - at);
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      rows.push(
        ['POST runs → 201 (ms)', pct(api, 50), pct(api, 99)],
        ['RunRequested stored → process spawned (ms)', pct(fromRequest, 50), pct(fromRequest, 99)],
        ['201 → process spawned (ms; < 0: before the 201)', pct(spawn, 50), pct(spawn, 99)],
        ['201 → `pass` finished (ms)', pct(finished, 50), pct(finished, 99)],
      );
    }

    if (PARTS.has('throughput')) {
      // 2. Throughput.
      log(`throughput: ${THROUGHPUT_RUNS} runs, 16 requests in flight, 2 workers x 4 slots`);
      rmSync(marks, { force: true });
      const t0 = performance.now();
      const ids: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < THROUGHPUT_RUNS) {
            next++;
            ids.push((await post('mark.py')).id);
          }
        }),
      );
      const requestedMs = performance.now() - t0;
      for (;;) {
        const r = (
          await sql<{
            n: number;
          }>`SELECT count(*)::int AS n FROM runs WHERE id = ANY(${ids}::uuid[]) AND status IN ('completed', 'failed', 'cancelled')`.execute(
            db,
          )
        ).rows[0]!;
        if (r.n === ids.length) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const totalMs = performance.now() - t0;
      const lines = readFileSync(marks, 'utf8').trim().split('\n');
      const executed = new Set(lines);
      const completed = (
        await sql<{
          n: number;
        }>`SELECT count(*)::int AS n FROM runs WHERE id = ANY(${ids}::uuid[]) AND status = 'completed'`.execute(
          db,
        )
      ).rows[0]!.n;
      const claims = (
        await sql<{
          n: number;
        }>`SELECT count(*)::int AS n FROM run_status_timeline WHERE run_id = ANY(${ids}::uuid[]) AND status = 'starting'`.execute(
          db,
        )
      ).rows[0]!.n;
      const numbers = (
        await sql<{
          number: number;
        }>`SELECT number FROM runs WHERE id = ANY(${ids}::uuid[]) ORDER BY number`.execute(db)
      ).rows.map((r) => r.number);
      const gapless = numbers.every((n, i) => i === 0 || n === numbers[i - 1]! + 1);
      summary = `\n${THROUGHPUT_RUNS} runs through 2 workers x 4 slots: requested in ${(requestedMs / 1000).toFixed(1)} s, all finished in ${(totalMs / 1000).toFixed(1)} s = ${(
        (THROUGHPUT_RUNS / totalMs) *
        1000
      ).toFixed(
        1,
      )} runs/s; completed ${completed}/${THROUGHPUT_RUNS}, executions ${lines.length} (distinct ${executed.size}), claims ${claims}, numbers gapless ${gapless}`;
      if (lines.length !== THROUGHPUT_RUNS || executed.size !== THROUGHPUT_RUNS || claims !== THROUGHPUT_RUNS)
        process.exitCode = 1;
    }

    // 3. A real dlt pipeline, one run after the other.
    if (PARTS.has('dlt')) {
      log(`dlt: ${DLT_RUNS} runs of the fixture pipeline (dlt + duckdb) one after the other`);
      const files = readdirSync(FIXTURE).filter((f) => f.endsWith('.py'));
      await uploadPackage(stack, 'deployments', [
        { path: 'pass.py', content: 'pass\n' },
        { path: 'mark.py', content: 'pass\n' },
        ...files.map((f) => ({ path: f, content: readFileSync(join(FIXTURE, f), 'utf8') })),
      ]);
      const dotDlt = join(FIXTURE, '.dlt');
      await uploadPackage(
        stack,
        'configurations',
        readdirSync(dotDlt)
          .filter((f) => f.endsWith('.toml'))
          .map((f) => ({ path: f, content: readFileSync(join(dotDlt, f), 'utf8') })),
      );
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
        name: 'pipeline.py',
        description: '',
        entry_point: 'pipeline.py',
        script_type: 'batch',
      });
      if (r.status !== 201) throw new Error(r.text);
      const toSpawn: number[] = [];
      const toCompleted: number[] = [];
      const dltRuns: string[] = [];
      for (let i = 0; i < DLT_RUNS; i++) {
        const { id } = await post('pipeline.py');
        dltRuns.push(id);
        for (;;) {
          const t = (
            await sql<{
              status: string;
              created_at: Date;
              started_at: Date | null;
              ended_at: Date | null;
              completed_at: Date | null;
            }>`SELECT r.status, r.created_at, r.started_at, r.ended_at,
                 (SELECT max(at) FROM run_status_timeline t WHERE t.run_id = r.id AND t.status = r.status) AS completed_at
               FROM runs r WHERE r.id = ${id}`.execute(db)
          ).rows[0];
          if (t && ['failed', 'cancelled'].includes(t.status)) throw new Error(`dlt run ${id}: ${t.status}`);
          if (t?.status === 'completed' && t.started_at && t.ended_at && t.completed_at) {
            toSpawn.push(t.started_at.getTime() - t.created_at.getTime());
            toCompleted.push(t.completed_at.getTime() - t.ended_at.getTime());
            break;
          }
          await new Promise((res) => setTimeout(res, 50));
        }
      }
      // The pipelines read model follows the run's events: each run reported its pipeline.
      let reported = 0;
      for (const until = Date.now() + 15_000; Date.now() < until;) {
        reported = (
          await sql<{
            n: number;
          }>`SELECT count(DISTINCT run_id)::int AS n FROM run_pipelines WHERE run_id = ANY(${dltRuns}::uuid[])`.execute(
            db,
          )
        ).rows[0]!.n;
        if (reported === DLT_RUNS) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      rows.push(
        ['dlt: RunRequested stored → process spawned (ms)', pct(toSpawn, 50), pct(toSpawn, 99)],
        ['dlt: process exited → run completed (ms)', pct(toCompleted, 50), pct(toCompleted, 99)],
      );
      summary += `\n${DLT_RUNS} dlt runs: ${reported} reported their pipeline`;
      if (reported !== DLT_RUNS) process.exitCode = 1;
    }

    console.log(`\nsandbox ${sandbox}\n| measure | p50 | p99 |\n|---|---|---|`);
    for (const [m, a, b] of rows) console.log(`| ${m} | ${a.toFixed(1)} | ${b.toFixed(1)} |`);
    console.log(summary);
  } finally {
    await db.destroy();
    await stack.stop();
  }
}

const modes =
  process.env.BENCH_RUNS_SANDBOX === 'on'
    ? ['on' as const]
    : process.env.BENCH_RUNS_SANDBOX === 'off'
      ? ['off' as const]
      : ['on' as const, 'off' as const];
for (const mode of modes) await measure(mode);
