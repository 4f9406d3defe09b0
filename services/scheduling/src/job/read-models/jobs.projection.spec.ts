import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { JobSpec } from '#libs/contracts';
import type { DomainEvent } from '#libs/eventstore';
import { projectionMigrations } from '#libs/projections';
import { createTestEnvironment, projectionSpec, type TestEnvironment } from '#libs/testing';
import { schedulingMigrations, type SchedulingTables } from '../../migrations/index.js';
import { jobRunsProjection } from './job-runs.projection.js';
import { jobOfRun } from './job-runs.queries.js';
import { jobsProjection } from './jobs.projection.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobA = '44444444-4444-4444-8444-444444444444';
const jobB = '55555555-5555-4555-8555-555555555555';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const run1 = '11111111-1111-4111-8111-111111111111';
const run2 = '22222222-2222-4222-8222-222222222222';
const run3 = '33333333-3333-4333-8333-333333333333';
const ref = (id: string) => ({ workspaceId: ws, type: 'job', id });

const spec = (name: string): JobSpec => ({
  name,
  description: '',
  entryPoint: name,
  kind: 'batch',
  profile: null,
  schedule: '* * * * *',
  active: true,
  timeoutSeconds: null,
  timezone: 'UTC',
  missedPolicy: 'run_once',
  overlapPolicy: 'queue',
});
const created = (id: string, name: string): DomainEvent => ({
  type: 'JobCreated',
  data: { jobId: id, versionId: id, version: 1, spec: spec(name), createdBy: user },
});
const requested = (runId: string, number: number, fireAt: string | null): DomainEvent => ({
  type: 'RunRequested',
  data: {
    runId,
    number,
    trigger: fireAt ? 'schedule' : 'manual',
    profile: 'prod',
    jobVersion: 1,
    jobVersionId: jobA,
    entryPoint: 'a.py',
    kind: 'batch',
    timeoutSeconds: null,
    deployment: { id: jobB, version: 1 },
    configuration: null,
    requestedBy: user,
    ...(fireAt ? { fireAt } : {}),
  },
});

describe('jobs and job_runs projections (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Kysely<SchedulingTables>;
  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, schedulingMigrations]);
    db = env.newDb<SchedulingTables>();
  });
  after(() => env.close());

  it('folds the fires of a batch: last_fire_at and next_scheduled_run move to the latest, a queued fire is set and cleared', async () => {
    const p = projectionSpec(db, jobsProjection);
    await p.given(
      { aggregate: ref(jobA), events: [created(jobA, 'a.py')], time: '2026-01-01T00:00:00.000Z' },
      { aggregate: ref(jobB), events: [created(jobB, 'b.py')], time: '2026-01-01T00:00:00.000Z' },
      { aggregate: ref(jobA), events: [requested(run1, 1, '2026-01-01T00:01:00.000Z')] },
      { aggregate: ref(jobB), events: [requested(run2, 1, '2026-01-01T00:01:00.000Z')] },
      {
        aggregate: ref(jobA),
        events: [{ type: 'FireQueued', data: { fireAt: '2026-01-01T00:02:00.000Z', activeRunId: run1 } }],
      },
      { aggregate: ref(jobB), events: [requested(run3, 2, '2026-01-01T00:03:00.000Z')] },
      { aggregate: ref(jobB), events: [requested(run1, 3, null)] },
    );
    const a = await db.selectFrom('jobs').selectAll().where('id', '=', jobA).executeTakeFirstOrThrow();
    assert.equal(a.last_fire_at?.toISOString(), '2026-01-01T00:02:00.000Z');
    assert.equal(a.queued_fire_at?.toISOString(), '2026-01-01T00:02:00.000Z');
    assert.equal(a.next_scheduled_run?.toISOString(), '2026-01-01T00:03:00.000Z');
    assert.equal(a.overlap_policy, 'queue');
    const b = await db.selectFrom('jobs').selectAll().where('id', '=', jobB).executeTakeFirstOrThrow();
    assert.equal(b.last_fire_at?.toISOString(), '2026-01-01T00:03:00.000Z');
    assert.equal(b.next_scheduled_run?.toISOString(), '2026-01-01T00:04:00.000Z');
    // The queued fire is requested (once the active run ended): cleared; an older fire time moves nothing.
    await p.given(
      { aggregate: ref(jobA), events: [requested(run2, 2, '2026-01-01T00:02:00.000Z')] },
      { aggregate: ref(jobA), events: [requested(run3, 3, '2026-01-01T00:01:00.000Z')] },
    );
    const a2 = await db.selectFrom('jobs').selectAll().where('id', '=', jobA).executeTakeFirstOrThrow();
    assert.equal(a2.queued_fire_at, null);
    assert.equal(a2.last_fire_at?.toISOString(), '2026-01-01T00:02:00.000Z');
  });

  it('job_runs: which job a run belongs to (the run-end reactor looks it up)', async () => {
    const p = projectionSpec(db, jobRunsProjection);
    const runRef = (id: string) => ({ workspaceId: ws, type: 'run', id });
    await p.given(
      { aggregate: ref(jobA), events: [requested(run1, 1, null)] },
      { aggregate: ref(jobB), events: [requested(run2, 2, null)] },
      { aggregate: runRef(run1), events: [{ type: 'RunCompleted', data: { exitCode: 0, durationMs: 5 } }] },
    );
    const rows = await db.selectFrom('job_runs').selectAll().orderBy('run_id').execute();
    assert.deepEqual(
      rows.map((r) => [r.run_id, r.job_id, r.workspace_id]),
      [
        [run1, jobA, ws],
        [run2, jobB, ws],
      ],
    );
    assert.equal(await jobOfRun(db, ws, run2), jobB);
    assert.equal(await jobOfRun(db, ws, run3), undefined);
    assert.equal(await jobOfRun(db, jobA, run1), undefined, 'only in its own workspace');
  });
});
