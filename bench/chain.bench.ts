/**
 * `npm run bench -- chain`: job.success / job.fail chains of manifest jobs (docs/manifest.md), on a
 * whole Runway in this process (the nats-server + PostgreSQL that scripts/bench.mjs started) with
 * one embedded worker. BENCH_CHAIN_SAMPLES (30) upstream runs, one after the other, alternately
 * succeeding and failing; each has one downstream job on `job.success:` / `job.fail:`. Measured:
 * upstream's end event stored (RunCompleted / RunFailed on the run's stream) → the downstream's
 * RunRequested stored (its job's stream), both the event store's own times. Prints ONE table.
 */
import { AggregateTypes } from '#libs/contracts';
import { executionRegistry } from '../services/execution/src/run/run.events.js';
import { schedulingRegistry } from '../services/scheduling/src/job/job.events.js';
import { jobIdFor } from '../services/scheduling/src/job/job-id.js';
import { jobRef } from '../services/scheduling/src/job/job.handler.js';
import { startTestStack } from '../test/support/stack.js';
import { uploadPackage } from '../test/jobs/support.js';

const SAMPLES = Number(process.env.BENCH_CHAIN_SAMPLES ?? 30);
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

const job = (ref: string, module: string, triggers: string[] = []) => ({
  job_ref: ref,
  entry_point: {
    module,
    function: null,
    job_type: 'batch',
    launcher: 'dlt._workspace.deployment.launchers.module',
  },
  triggers,
  execute: { concurrency: null },
  expose: { manual: true },
});

async function main(): Promise<void> {
  const s = await startTestStack({ RUNWAY_WORKER_SLOTS: '4' });
  const ws = s.workspaceId;
  try {
    await uploadPackage(s, 'deployments', [
      { path: 'ok.py', content: 'print("ok")\n' },
      { path: 'bad.py', content: 'import sys\nsys.exit(1)\n' },
    ]);
    const r = await s.call('PUT', `/api/v1/workspaces/${ws}/deployment_manifest`, {
      job_definition_engine_version: 1,
      job_definition_hash: 'bench',
      deployment_module: '__deployment__',
      jobs: [
        job('jobs.c.up_ok', 'ok'),
        job('jobs.c.up_bad', 'bad'),
        job('jobs.c.down_ok', 'ok', ['job.success:jobs.c.up_ok']),
        job('jobs.c.down_bad', 'ok', ['job.fail:jobs.c.up_bad']),
      ],
    });
    if (r.status !== 200) throw new Error(`deploy: ${r.status} ${r.text}`);
    const jobs = s.env.newStore(schedulingRegistry());
    const runs = s.env.newStore(executionRegistry());
    const requests = async (ref: string) =>
      (await jobs.read(jobRef(ws, jobIdFor(ws, ref)))).events.filter((e) => e.type === 'RunRequested');
    const lat: { success: number[]; fail: number[] } = { success: [], fail: [] };
    for (let i = 0; i < SAMPLES; i++) {
      const kind = i % 2 === 0 ? 'success' : 'fail';
      const up = kind === 'success' ? 'jobs.c.up_ok' : 'jobs.c.up_bad';
      const down = kind === 'success' ? 'jobs.c.down_ok' : 'jobs.c.down_bad';
      const before = (await requests(down)).length;
      const t = await s.call('POST', `/api/v1/workspaces/${ws}/scripts/trigger`, { job_refs: [up] });
      if (t.status !== 201) throw new Error(`trigger: ${t.status} ${t.text}`);
      const runId = (t.json as { triggered: { run_id: string }[] }).triggered[0]!.run_id;
      const until = Date.now() + 60_000;
      let downAt: number | undefined;
      while (downAt === undefined) {
        const reqs = await requests(down);
        if (reqs.length > before) downAt = Date.parse(reqs[reqs.length - 1]!.time);
        else if (Date.now() > until) throw new Error(`no downstream run of ${down} after ${up}`);
        else await sleep(20);
      }
      const end = (await runs.read({ workspaceId: ws, type: AggregateTypes.run, id: runId })).events.find(
        (e) => e.type === 'RunCompleted' || e.type === 'RunFailed',
      );
      if (!end) throw new Error(`run ${runId} has no end event`);
      lat[kind].push(downAt - Date.parse(end.time));
    }
    const all = [...lat.success, ...lat.fail];
    const row = (name: string, xs: number[]) =>
      `| ${name} | ${xs.length} | ${pct(xs, 50)} ms | ${pct(xs, 99)} ms | ${Math.max(...xs)} ms |`;
    process.stdout.write(
      [
        '',
        '| chain | samples | upstream end → downstream RunRequested p50 | p99 | max |',
        '| --- | --- | --- | --- | --- |',
        row('job.success', lat.success),
        row('job.fail', lat.fail),
        row('all', all),
        '',
      ].join('\n'),
    );
  } finally {
    await s.stop();
  }
  log('done');
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
