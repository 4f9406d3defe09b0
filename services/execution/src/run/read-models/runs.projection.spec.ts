import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { DomainEvent } from '#libs/eventstore';
import { projectionMigrations } from '#libs/projections';
import { createTestEnvironment, projectionSpec, type TestEnvironment } from '#libs/testing';
import { executionMigrations, type ExecutionTables } from '../../migrations/index.js';
import { runsProjection } from './runs.projection.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = '44444444-4444-4444-8444-444444444444';
const runId = '33333333-3333-4333-8333-333333333333';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const job = { workspaceId: ws, type: 'job', id: jobId };
const run = { workspaceId: ws, type: 'run', id: runId };

describe('runs projection (real Postgres)', () => {
  let env: TestEnvironment;
  let db: Kysely<ExecutionTables>;
  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, executionMigrations]);
    db = env.newDb<ExecutionTables>();
  });
  after(() => env.close());

  it('builds the run row and its status timeline from the request and the run events', async () => {
    const spec = projectionSpec(db, runsProjection);
    const requested: DomainEvent = {
      type: 'RunRequested',
      data: {
        runId,
        number: 7,
        trigger: 'manual',
        profile: 'prod',
        jobVersion: 2,
        jobVersionId: '11111111-1111-4111-8111-111111111111',
        entryPoint: 'a.py',
        kind: 'batch',
        timeoutSeconds: null,
        deployment: { id: '22222222-2222-4222-8222-222222222222', version: 3 },
        configuration: null,
        requestedBy: user,
      },
    };
    await spec.given(
      { aggregate: job, events: [requested], time: '2026-01-01T00:00:00.000Z' },
      {
        aggregate: run,
        events: [{ type: 'RunStarting', data: { runId, jobId, number: 7, workerId: 'w1', host: 'h' } }],
        time: '2026-01-01T00:00:00.100Z',
      },
      {
        aggregate: run,
        events: [
          {
            type: 'RunStarted',
            data: { pid: 42, command: 'python a.py', startedAt: '2026-01-01T00:00:00.120Z' },
          },
        ],
        time: '2026-01-01T00:00:02.500Z',
      },
      {
        aggregate: run,
        events: [
          { type: 'RunFinalizing', data: { exitCode: 3, signal: null, endedAt: '2026-01-01T00:00:01.000Z' } },
        ],
        time: '2026-01-01T00:00:02.510Z',
      },
      {
        aggregate: run,
        events: [
          {
            type: 'RunFailed',
            data: {
              reason: 'exit_code',
              message: 'the process exited with code 3',
              exitCode: 3,
              signal: null,
              durationMs: 880,
              stderrTail: ['boom'],
              endedAt: '2026-01-01T00:00:01.000Z',
            },
          },
        ],
        time: '2026-01-01T00:00:02.520Z',
      },
    );
    const row = await db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
    assert.equal(row.status, 'failed');
    assert.equal(row.number, 7);
    assert.equal(row.job_id, jobId);
    assert.equal(row.deployment_version, 3);
    assert.equal(row.exit_code, 3);
    assert.equal(row.failure_reason, 'exit_code');
    assert.deepEqual(row.stderr_tail, ['boom']);
    assert.equal(row.started_at?.toISOString(), '2026-01-01T00:00:00.120Z');
    assert.equal(row.ended_at?.toISOString(), '2026-01-01T00:00:01.000Z');
    assert.equal(row.pid, 42);
    const timeline = await db
      .selectFrom('run_status_timeline')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('seq')
      .execute();
    assert.deepEqual(
      timeline.map((t) => [t.status, t.at.toISOString()]),
      [
        ['pending', '2026-01-01T00:00:00.000Z'],
        ['starting', '2026-01-01T00:00:00.100Z'],
        ['running', '2026-01-01T00:00:00.120Z'],
        ['finalizing', '2026-01-01T00:00:01.000Z'],
        ['failed', '2026-01-01T00:00:02.520Z'],
      ],
    );
    assert.match(timeline[4]!.reason, /exit_code: the process exited with code 3/);
  });

  it('shows a skipped scheduled fire as a run in status skipped, ended at once, never pending', async () => {
    const spec = projectionSpec(db, runsProjection);
    const skippedId = '55555555-5555-4555-8555-555555555555';
    // A new spec numbers its commits from 1 again: step past the checkpoint of the test above.
    await spec.given(...Array.from({ length: 20 }, () => ({ aggregate: job, events: [] })));
    await spec.given({
      aggregate: job,
      time: '2026-01-02T00:00:00.200Z',
      events: [
        {
          type: 'ScheduledRunSkipped',
          data: {
            runId: skippedId,
            number: 8,
            trigger: 'schedule',
            profile: 'prod',
            jobVersion: 2,
            jobVersionId: '11111111-1111-4111-8111-111111111111',
            entryPoint: 'a.py',
            kind: 'batch',
            deployment: null,
            configuration: null,
            requestedBy: 'scheduler',
            fireAt: '2026-01-02T00:00:00.000Z',
            reason: 'a run of job a.py is still active (overlap policy skip)',
          },
        },
      ],
    });
    const row = await db.selectFrom('runs').selectAll().where('id', '=', skippedId).executeTakeFirstOrThrow();
    assert.equal(row.status, 'skipped');
    assert.equal(row.number, 8);
    assert.equal(row.trigger, 'schedule');
    assert.equal(row.ended_at?.toISOString(), '2026-01-02T00:00:00.200Z');
    assert.equal(row.started_at, null);
    assert.match(row.message ?? '', /overlap policy skip/);
    const timeline = await db
      .selectFrom('run_status_timeline')
      .select(['status', 'reason'])
      .where('run_id', '=', skippedId)
      .execute();
    assert.deepEqual(
      timeline.map((t) => t.status),
      ['skipped'],
    );
    assert.match(timeline[0]!.reason, /scheduled fire at 2026-01-02T00:00:00.000Z skipped/);
  });
});
