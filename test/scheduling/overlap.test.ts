import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { readSse } from '../logs/sse.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ApiRun extends Json {
  id: string;
  number: number;
  /** Runway's status (runway_status); the compatible `status` is kept in compatStatus. */
  status: string;
  compatStatus: string;
  trigger: string;
  date_added: string;
  time_ended: string | null;
  message: string | null;
}

/**
 * Overlap policies with real Python runs: every job fires every 2 s and each run sleeps 5 s, so
 * fires keep arriving while a run of the job is active.
 */
describe('overlap policy: skip / queue / allow with real runs', () => {
  let s: TestStack;
  let ws: string;
  const jobs: Record<string, Json> = {};
  const base = () => `/api/v1/workspaces/${ws}`;
  const upsert = (body: Json) =>
    s.call('POST', `${base()}/scripts`, {
      description: '',
      entry_point: 'sleep5.py',
      script_type: 'batch',
      profile: null,
      ...body,
    });
  const runsOf = async (jobId: string): Promise<ApiRun[]> => {
    const r = await s.call('GET', `${base()}/runs?script_id=${jobId}&limit=100`);
    assert.equal(r.status, 200, r.text);
    return ((r.json as { items: ApiRun[] }).items ?? [])
      .map((x) => ({ ...x, compatStatus: x.status, status: String(x.runway_status) }))
      .sort((a, b) => a.number - b.number);
  };
  const eventsOf = async (jobId: string) =>
    (await s.env.newStore(schedulingRegistry()).read(jobRef(ws, jobId))).events;
  /** Runs that really ran (not skipped) never overlap: each is requested after the previous one ended. */
  const assertSequential = (runs: ApiRun[]) => {
    const real = runs.filter((r) => r.status !== 'skipped');
    for (let i = 1; i < real.length; i++) {
      const prev = real[i - 1]!;
      const cur = real[i]!;
      assert.ok(prev.time_ended, `run ${prev.number} ended`);
      assert.ok(
        Date.parse(cur.date_added) >= Date.parse(prev.time_ended),
        `run ${cur.number} requested at ${cur.date_added} while run ${prev.number} was active (ended ${prev.time_ended})`,
      );
    }
  };

  before(async () => {
    s = await startTestStack({ RUNWAY_WORKER_SLOTS: '8' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [
      {
        path: 'sleep5.py',
        content: 'import time\nprint("sleeping", flush=True)\ntime.sleep(5)\nprint("done")\n',
      },
    ]);
  });
  after(async () => {
    await s.stop();
  });

  it('fires three jobs every 2 s for 14 s, then deactivates them and waits for their runs', async () => {
    for (const policy of ['skip', 'queue', 'allow']) {
      const r = await upsert({
        name: `overlap-${policy}`,
        schedule: '*/2 * * * * *',
        ...(policy === 'skip' ? {} : { overlap_policy: policy }),
      });
      assert.equal(r.status, 201, r.text);
      const job = r.json as Json;
      assert.equal(job.overlap_policy, policy, 'skip is the default');
      jobs[policy] = job;
    }
    await sleep(14_000);
    for (const policy of ['skip', 'queue', 'allow']) {
      const r = await upsert({ name: `overlap-${policy}`, active: false });
      assert.equal(r.status, 201, r.text);
    }
    const until = Date.now() + 60_000;
    for (;;) {
      const all = (await Promise.all(Object.values(jobs).map((j) => runsOf(j.id as string)))).flat();
      if (all.every((r) => ['completed', 'failed', 'cancelled', 'skipped'].includes(r.status))) break;
      assert.ok(Date.now() < until, 'runs did not end within 60 s');
      await sleep(500);
    }
  });

  it('skip (default): fires while a run is active become skipped runs with the reason, ended at once, never pending', async () => {
    const runs = await runsOf(jobs.skip!.id as string);
    assert.deepEqual(
      runs.map((r) => r.number),
      runs.map((_, i) => i + 1),
      'numbered like the other runs, no gaps',
    );
    const skipped = runs.filter((r) => r.status === 'skipped');
    const done = runs.filter((r) => r.status === 'completed');
    assert.ok(done.length >= 2, `completed runs: ${done.length}`);
    assert.ok(skipped.length >= 2, `skipped runs: ${skipped.length}`);
    for (const r of runs) assert.equal(r.trigger, 'schedule');
    for (const r of skipped) {
      // The dlt CLI's `logs -f` would follow a run in `skipped` forever: the compatible status says cancelled.
      assert.equal(r.compatStatus, 'cancelled');
      assert.match(r.message ?? '', /still active \(overlap policy skip\)/);
      assert.ok(r.time_ended, 'a skipped run has ended');
      const one = await s.call('GET', `${base()}/runs/${r.id}`);
      const timeline = ((one.json as Json).status_timeline as Json[]).map((t) => t.status);
      assert.deepEqual(timeline, ['skipped'], 'never pending');
    }
    assertSequential(runs);
    // The run aggregate ends as skipped too, so its (empty) log is sealed and a follow ends at once.
    const one = skipped[0]!;
    const { events } = await s.env
      .newStore(schedulingRegistry())
      .read({ workspaceId: ws, type: 'run', id: one.id });
    assert.deepEqual(
      events.map((e) => e.type),
      ['RunSkipped'],
    );
    const t0 = Date.now();
    const sse = await readSse(`${s.api}/v1/workspaces/${ws}/runs/${one.id}/logs/stream`, s.adminToken, {
      timeoutMs: 30_000,
    });
    assert.equal(sse.status, 200);
    const end = sse.events.find((e) => e.event === 'end');
    assert.ok(end, 'the stream ended');
    assert.deepEqual(JSON.parse(end.data), { lineCount: 0, sealed: true });
    assert.ok(Date.now() - t0 < 10_000, `ended after ${Date.now() - t0} ms`);
  });

  it('queue: one fire waits and runs when the active run ended; a second waiting fire is skipped', async () => {
    const runs = await runsOf(jobs.queue!.id as string);
    assertSequential(runs);
    const events = await eventsOf(jobs.queue!.id as string);
    const queued = events.filter((e) => e.type === 'FireQueued');
    assert.ok(queued.length >= 1, 'a fire was queued');
    for (const q of queued) {
      const fireAt = (q.data as { fireAt: string }).fireAt;
      const i = events.indexOf(q);
      const req = events
        .slice(i + 1)
        .find((e) => e.type === 'RunRequested' && (e.data as { fireAt?: string }).fireAt === fireAt);
      // The last queued fire may have been dropped by the deactivation.
      if (!req) {
        assert.equal(q, queued[queued.length - 1], `queued fire ${fireAt} never requested`);
        continue;
      }
      const ended = events.slice(i + 1, events.indexOf(req)).find((e) => e.type === 'RunEnded');
      assert.ok(ended, `queued fire ${fireAt} requested only after a run ended`);
      assert.ok(Date.parse(req.time) - Date.parse(fireAt) > 1000, 'it waited');
    }
    const skipped = runs.filter((r) => r.status === 'skipped');
    assert.ok(skipped.length >= 1, 'fires while one was queued are skipped');
    for (const r of skipped) assert.match(r.message ?? '', /already queued \(overlap policy queue\)/);
    assert.ok(runs.filter((r) => r.status === 'completed').length >= 2);
  });

  it('allow: runs overlap, nothing is skipped', async () => {
    const runs = await runsOf(jobs.allow!.id as string);
    assert.ok(runs.length >= 5, `runs: ${runs.length}`);
    assert.equal(runs.filter((r) => r.status === 'skipped').length, 0);
    const overlapping = runs.some(
      (r, i) => i > 0 && Date.parse(r.date_added) < Date.parse(runs[i - 1]!.time_ended ?? '0'),
    );
    assert.ok(overlapping, 'at least two runs were active at once');
    assert.ok(runs.every((r) => r.status === 'completed'));
  });

  it('does not hold back a manual run while a scheduled run is active', async () => {
    const on = await upsert({ name: 'overlap-skip', active: true, schedule: '0 0 1 1 *' });
    assert.equal(on.status, 201, on.text);
    const a = await s.call('POST', `${base()}/runs`, { script_id_or_name: 'overlap-skip', profile: null });
    const b = await s.call('POST', `${base()}/runs`, { script_id_or_name: 'overlap-skip', profile: null });
    assert.equal(a.status, 201, a.text);
    assert.equal(b.status, 201, b.text);
    // Not skipped or held back: requested like any run (a worker may have claimed it already).
    assert.ok(['pending', 'starting', 'running'].includes(String((b.json as Json).runway_status)), b.text);
  });
});
