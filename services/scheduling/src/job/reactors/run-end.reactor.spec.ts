import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { AggregateTypes } from '#libs/contracts';
import type { EventStore, Reactor, StoredCommit } from '#libs/eventstore';
import { projectionMigrations, ProjectionRunner } from '#libs/projections';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { schedulingMigrations, type SchedulingTables } from '../../migrations/index.js';
import { schedulingRegistry } from '../job.events.js';
import { JobCommands, jobRef } from '../job.handler.js';
import { jobIdFor } from '../job-id.js';
import { deployedVersions, testUser } from '../job-test-fixtures.js';
import { jobRunsProjection } from '../read-models/job-runs.projection.js';
import { startRunEndReactor } from './run-end.reactor.js';

const ws = '8d1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a44';
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

describe('run-end reactor: a run ends → its job is told (real JetStream + PostgreSQL)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<SchedulingTables>;
  let runner: ProjectionRunner;
  let jobs: JobCommands;
  let reactor: Reactor;
  /** RunEnded events seen live on job subjects (a core subscription), by run id, with the time seen. */
  const noted = new Map<string, { at: number; commit: StoredCommit }>();
  const waiters = new Map<string, () => void>();

  const endRun = async (
    runId: string,
    type: 'RunCompleted' | 'RunFailed' | 'RunCancelled' = 'RunCompleted',
  ) => {
    const data =
      type === 'RunCompleted'
        ? { exitCode: 0, durationMs: 1 }
        : type === 'RunFailed'
          ? {
              reason: 'exit_code' as const,
              message: 'exit 1',
              exitCode: 1,
              signal: null,
              durationMs: 1,
              stderrTail: [],
              endedAt: null,
            }
          : { by: null, message: 'cancelled', exitCode: null, signal: null, durationMs: null, endedAt: null };
    const ref = { workspaceId: ws, type: AggregateTypes.run, id: runId };
    return store.append(ref, await store.lastSequenceOf(ref), [{ type, data }], {
      commandId: `end-${runId}`,
      actor: 'test-worker',
    });
  };
  const notedOnce = (runId: string, ms = 5_000) =>
    new Promise<number>((resolve, reject) => {
      const hit = noted.get(runId);
      if (hit) return resolve(hit.at);
      const t = setTimeout(() => reject(new Error(`run ${runId} not noted within ${ms} ms`)), ms);
      waiters.set(runId, () => {
        clearTimeout(t);
        resolve(noted.get(runId)!.at);
      });
    });
  const request = async (jobId: string) =>
    (
      await jobs.requestRun({
        workspaceId: ws,
        actor: testUser,
        commandId: randomUUID(),
        jobId,
        trigger: 'manual',
        profile: null,
      })
    ).runId;
  const createJob = async (name: string, extra: Record<string, unknown> = {}) => {
    await jobs.upsert({
      workspaceId: ws,
      actor: testUser,
      commandId: `create-${name}`,
      name,
      description: '',
      entryPoint: name,
      kind: 'batch',
      ...extra,
    });
    return jobIdFor(ws, name);
  };

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, schedulingMigrations]);
    store = env.newStore(schedulingRegistry());
    await store.ensureStream();
    db = env.newDb<SchedulingTables>();
    runner = new ProjectionRunner(store, untypedDb(db), jobRunsProjection);
    await runner.start();
    jobs = new JobCommands(store, deployedVersions);
    reactor = await startRunEndReactor({
      store,
      db,
      jobs,
      waitForJobRuns: (seq) => runner.waitFor(seq),
    });
    // Watch the job streams live: every RunEnded the job records.
    env.nats.subscribe(store.filterSubject({ workspaceId: ws, aggregateType: AggregateTypes.job }), {
      callback: (err, m) => {
        if (err) return;
        const commit = store.decode({ seq: 0, subject: m.subject, data: m.data });
        for (const e of commit.events) {
          if (e.type !== 'RunEnded') continue;
          const { runId } = e.data as { runId: string };
          if (noted.has(runId)) assert.fail(`run ${runId} noted twice`);
          noted.set(runId, { at: Date.now(), commit });
          waiters.get(runId)?.();
        }
      },
    });
  });
  after(async () => {
    await reactor.stop();
    await runner.stop();
    await db.destroy();
    await env.close();
  });

  it('tells the job within a second of the run end (p50/p99 over 200 runs), once each', async () => {
    const jobId = await createJob('ends.py');
    const lat: number[] = [];
    for (let i = 0; i < 200; i++) {
      const runId = await request(jobId);
      // The lookup may lag (job_runs): half of the ends come right after the request.
      if (i % 2 === 0) await runner.waitFor(await store.lastSequenceOf(jobRef(ws, jobId)));
      const waiting = notedOnce(runId);
      const t0 = Date.now();
      await endRun(runId, (['RunCompleted', 'RunFailed', 'RunCancelled'] as const)[i % 3]);
      lat.push((await waiting) - t0);
    }
    lat.sort((a, b) => a - b);
    console.log(
      `run end → RunEnded on the job: p50 ${pct(lat, 0.5)} ms, p99 ${pct(lat, 0.99)} ms, max ${lat.at(-1)} ms`,
    );
    assert.ok(pct(lat, 0.99) < 1_000, `p99 ${pct(lat, 0.99)} ms`);
    const ended = (await store.read(jobRef(ws, jobId))).events.filter((e) => e.type === 'RunEnded');
    assert.equal(ended.length, 200, 'one RunEnded per run');
    assert.deepEqual(
      ended.slice(0, 3).map((e) => (e.data as { status: string }).status),
      ['completed', 'failed', 'cancelled'],
    );
  });

  it('requests the queued fire when the active run ends (overlap policy queue)', async () => {
    const jobId = await createJob('queued.py', { schedule: '*/5 * * * * *', overlapPolicy: 'queue' });
    const base = Math.ceil(Date.now() / 5000) * 5000;
    const first = await jobs.fireOutcome(ws, jobId, new Date(base + 5000));
    assert.equal(first.outcome, 'requested');
    assert.equal((await jobs.fireOutcome(ws, jobId, new Date(base + 10_000))).outcome, 'queued');
    await runner.waitFor(await store.lastSequenceOf(jobRef(ws, jobId)));
    const waiting = notedOnce(first.runId!);
    await endRun(first.runId!);
    await waiting;
    const { commit } = noted.get(first.runId!)!;
    assert.deepEqual(
      commit.events.map((e) => e.type),
      ['RunEnded', 'RunRequested'],
      'the queued fire is requested with the end, in one decision',
    );
    assert.equal(
      (commit.events[1]!.data as { fireAt: string }).fireAt,
      new Date(base + 10_000).toISOString(),
    );
  });

  it('passes over a run no job requested, and redeliveries decide nothing twice', async () => {
    const stray = randomUUID();
    await endRun(stray);
    const jobId = await createJob('redeliver.py');
    const runId = await request(jobId);
    // A restarted reactor (same durable) and a second replica change nothing that was handled.
    await reactor.stop();
    const replica = await startRunEndReactor({
      store,
      db,
      jobs,
      waitForJobRuns: (seq) => runner.waitFor(seq),
    });
    reactor = await startRunEndReactor({ store, db, jobs, waitForJobRuns: (seq) => runner.waitFor(seq) });
    const waiting = notedOnce(runId);
    await endRun(runId);
    await waiting;
    await new Promise((r) => setTimeout(r, 300));
    await replica.stop();
    assert.equal(noted.has(stray), false);
    const ended = (await store.read(jobRef(ws, jobId))).events.filter((e) => e.type === 'RunEnded');
    assert.equal(ended.length, 1);
  });
});
