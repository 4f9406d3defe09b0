import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredCommit } from '#libs/eventstore';
import { dashboardMessageSchema } from '../../../../libs/client/src/dashboard.js';
import { decodeCursor, encodeCursor } from './dashboard.service.js';
import { LIVE_EVENT_TYPES, liveMessagesOf } from './live-events.js';

const WS = '11111111-1111-4111-8111-111111111111';
const JOB = '22222222-2222-4222-8222-222222222222';
const RUN = '33333333-3333-4333-8333-333333333333';
const AT = '2026-12-04T17:00:00.000Z';

function commit(type: 'job' | 'run', id: string, events: { type: string; data: unknown }[]): StoredCommit {
  const aggregate = { workspaceId: WS, type, id };
  const meta = { commandId: 'c', actor: 'a', correlationId: 'c', time: AT };
  return {
    seq: 7,
    subject: `evt.${WS}.${type}.${id}`,
    aggregate,
    meta,
    events: events.map((e, index) => ({ ...e, seq: 7, index, aggregate, ...meta })),
  };
}

describe('the live messages of a commit', () => {
  it('names the run, its job and status; a failure with its reason; nothing of the payload else', () => {
    const requested = liveMessagesOf(
      commit('job', JOB, [
        { type: 'RunRequested', data: { runId: RUN, number: 1, requestedBy: 'secret-user' } },
      ]),
      () => null,
    );
    assert.deepEqual(requested, [
      { type: 'run.status', run_id: RUN, job_id: JOB, status: 'pending', at: AT, reason: null },
    ]);
    const failed = liveMessagesOf(
      commit('run', RUN, [
        {
          type: 'RunFailed',
          data: { reason: 'exit_code', message: 'exited with 3', stderrTail: ['token=abc'] },
        },
      ]),
      (id) => (id === RUN ? JOB : null),
    );
    assert.deepEqual(failed, [
      {
        type: 'run.status',
        run_id: RUN,
        job_id: JOB,
        status: 'failed',
        at: AT,
        reason: 'exit_code: exited with 3',
      },
    ]);
    assert.ok(!JSON.stringify(failed).includes('token=abc'));
    for (const m of [...requested, ...failed]) dashboardMessageSchema.parse(m);
  });

  it('ignores event types it does not list (private events, logs, pipelines)', () => {
    assert.ok(!LIVE_EVENT_TYPES.includes('PipelineReported'));
    const none = liveMessagesOf(
      commit('run', RUN, [
        { type: 'RunFinalizing', data: {} },
        { type: 'PipelineReported', data: { pipelines: [] } },
      ]),
      () => JOB,
    );
    assert.deepEqual(none, []);
  });

  it('tells job changes and new deployments', () => {
    const m = liveMessagesOf(
      commit('job', JOB, [
        { type: 'JobUpdated', data: {} },
        { type: 'DeploymentCreated', data: { deploymentId: RUN, version: 4 } },
      ]),
      () => null,
    );
    assert.deepEqual(m, [
      { type: 'job.changed', job_id: JOB, change: 'updated', at: AT },
      { type: 'deployment.created', deployment_id: RUN, version: 4, at: AT },
    ]);
  });
});

describe('the runs page cursor', () => {
  it('round-trips a position and refuses anything else with a 400', () => {
    const p = { createdAt: '2026-12-04T17:00:00.123456Z', id: RUN };
    assert.deepEqual(decodeCursor(encodeCursor(p)), p);
    for (const bad of [
      'zzz',
      Buffer.from('[1,2]').toString('base64url'),
      encodeCursor({ createdAt: 'now', id: RUN }),
    ])
      assert.throws(() => decodeCursor(bad), { status: 400 });
  });
});
