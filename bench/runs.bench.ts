/**
 * `npm run bench -- runs`: run start latency and throughput on a whole Runway (in this process, on
 * the nats-server + PostgreSQL that scripts/bench.mjs started), with 2 embedded workers of 4 slots.
 *
 * 1. Latency, 200 runs one after the other of a `python -c pass`-like script: from the 201 of
 *    `POST runs` to the user process spawned (the run's time_started), and to the process finished
 *    (time_ended). Interpreter start is in the second number only.
 * 2. Throughput: 500 trivial runs requested 16 at a time; runs/s until all completed, and a check
 *    that none was lost or executed twice (a marker line per execution, one `starting` per run).
 * Both with the run sandbox (bubblewrap, the default) and without it (RUNWAY_SANDBOX=off);
 * BENCH_RUNS_SANDBOX=on|off measures one of them. Prints ONE table per mode.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { createKysely } from '#libs/database';
import { startTestStack } from '../test/support/stack.js';
import { uploadPackage } from '../test/jobs/support.js';

const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 200);
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 500);
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

    const rows = [
      ['POST runs → 201 (ms)', pct(api, 50), pct(api, 99)],
      ['RunRequested stored → process spawned (ms)', pct(fromRequest, 50), pct(fromRequest, 99)],
      ['201 → process spawned (ms; < 0: before the 201)', pct(spawn, 50), pct(spawn, 99)],
      ['201 → `pass` finished (ms)', pct(finished, 50), pct(finished, 99)],
    ];
    console.log(`\nsandbox ${sandbox}\n| measure | p50 | p99 |\n|---|---|---|`);
    for (const [m, a, b] of rows) console.log(`| ${m} | ${Number(a).toFixed(1)} | ${Number(b).toFixed(1)} |`);
    console.log(
      `\n${THROUGHPUT_RUNS} runs through 2 workers x 4 slots: requested in ${(requestedMs / 1000).toFixed(1)} s, all finished in ${(totalMs / 1000).toFixed(1)} s = ${(
        (THROUGHPUT_RUNS / totalMs) *
        1000
      ).toFixed(
        1,
      )} runs/s; completed ${completed}/${THROUGHPUT_RUNS}, executions ${lines.length} (distinct ${executed.size}), claims ${claims}, numbers gapless ${gapless}`,
    );
    if (lines.length !== THROUGHPUT_RUNS || executed.size !== THROUGHPUT_RUNS || claims !== THROUGHPUT_RUNS)
      process.exitCode = 1;
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
