import { describe, it } from 'node:test';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import { alertRuleDecider, type AlertRuleCommand, type RunOutcome } from './rule.decider.js';
import type { AlertCondition, AlertRuleEvent, AlertRuleSpec } from './rule.events.js';

const ruleId = '11111111-1111-4111-8111-111111111111';
const jobId = '22222222-2222-4222-8222-222222222222';
const otherJob = '44444444-4444-4444-8444-444444444444';
const run = (n: number) => `33333333-3333-4333-8333-${String(n).padStart(12, '0')}`;
const alert = (n: number) => `55555555-5555-4555-8555-${String(n).padStart(12, '0')}`;
const t0 = Date.parse('2026-12-04T12:00:00.000Z');
const at = (sec: number) => new Date(t0 + sec * 1000).toISOString();

const spec = (over: Partial<AlertRuleSpec> = {}): AlertRuleSpec => ({
  name: 'r',
  jobId,
  jobName: 'load.py',
  conditions: ['run_failed'],
  failuresInRow: 3,
  webhook: { url: 'https://example.com/hook', sealedSecret: 'c2VhbGVk' },
  email: null,
  rateLimit: { max: 2, windowSeconds: 600 },
  enabled: true,
  ...over,
});
const created = (s: AlertRuleSpec): AlertRuleEvent => ({
  type: 'AlertRuleCreated',
  data: { ruleId, spec: s, createdBy: 'u' },
});
const failed: RunOutcome = { kind: 'failed', reason: 'exit_code' };
const note = (n: number, outcome: RunOutcome, sec = n, job = jobId): AlertRuleCommand => ({
  type: 'NoteRunOutcome',
  alertId: alert(n),
  runId: run(n),
  jobId: job,
  jobName: 'load.py',
  runNumber: n,
  outcome,
  message: 'm',
  at: at(sec),
});
const noted = (n: number, streak: number, job = jobId): AlertRuleEvent => ({
  type: 'AlertRunNoted',
  data: { runId: run(n), jobId: job, failuresInRow: streak },
});
const raised = (
  n: number,
  conditions: AlertCondition[],
  o: {
    outcome?: 'failed' | 'completed' | 'skipped';
    reason?: 'exit_code' | 'timeout' | null;
    streak?: number;
    suppressed?: number;
    sec?: number;
  } = {},
): AlertRuleEvent => ({
  type: 'AlertRaised',
  data: {
    alertId: alert(n),
    runId: run(n),
    jobId,
    jobName: 'load.py',
    runNumber: n,
    conditions,
    outcome: o.outcome ?? 'failed',
    reason: o.reason === undefined ? 'exit_code' : o.reason,
    message: 'm',
    failuresInRow: o.streak ?? 1,
    endedAt: at(o.sec ?? n),
    suppressed: o.suppressed ?? 0,
    channels: ['webhook'],
  },
});
const s = deciderSpec(alertRuleDecider);

describe('alert rule decider', () => {
  it('creates a rule once, with a target', () => {
    s.given([])
      .when({ type: 'CreateAlertRule', ruleId, spec: spec(), by: 'u' })
      .then([created(spec())]);
    s.given([created(spec())])
      .when({ type: 'CreateAlertRule', ruleId, spec: spec(), by: 'u' })
      .thenThrows(DomainError, /exists/);
    s.given([])
      .when({ type: 'CreateAlertRule', ruleId, spec: spec({ webhook: null }), by: 'u' })
      .thenThrows(DomainError, /webhook or an email/);
  });

  it('updates (only what changed) and deletes; a deleted rule alerts nothing', () => {
    s.given([created(spec())])
      .when({ type: 'UpdateAlertRule', spec: spec({ name: 'r2' }), by: 'u' })
      .then([
        { type: 'AlertRuleUpdated', data: { spec: spec({ name: 'r2' }), changed: ['name'], updatedBy: 'u' } },
      ]);
    s.given([created(spec())])
      .when({ type: 'UpdateAlertRule', spec: spec(), by: 'u' })
      .thenNothing();
    s.given([created(spec())])
      .when({ type: 'DeleteAlertRule', by: 'u' })
      .then([{ type: 'AlertRuleDeleted', data: { deletedBy: 'u' } }]);
    const deleted: AlertRuleEvent = { type: 'AlertRuleDeleted', data: { deletedBy: 'u' } };
    s.given([created(spec()), deleted])
      .when({ type: 'DeleteAlertRule', by: 'u' })
      .thenNothing();
    s.given([created(spec()), deleted])
      .when(note(1, failed))
      .thenNothing();
    s.given([]).when({ type: 'DeleteAlertRule', by: 'u' }).thenThrows(NotFoundError);
  });

  it('raises one alert per run (a second note of the run decides nothing), only for its job', () => {
    s.given([created(spec())])
      .when(note(1, failed))
      .then([noted(1, 1), raised(1, ['run_failed'])]);
    s.given([created(spec()), noted(1, 1), raised(1, ['run_failed'])])
      .when(note(1, failed))
      .thenNothing();
    s.given([created(spec())])
      .when(note(1, failed, 1, otherJob))
      .thenNothing();
    s.given([created(spec({ jobId: null }))])
      .when(note(1, failed, 1, otherJob))
      .then([
        noted(1, 1, otherJob),
        {
          ...raised(1, ['run_failed']),
          data: { ...raised(1, ['run_failed']).data, jobId: otherJob },
        } as AlertRuleEvent,
      ]);
  });

  it('tells timeouts and lost workers; a skip by the overlap policy', () => {
    const sp = spec({ conditions: ['timed_out', 'worker_lost', 'skipped_by_overlap'] });
    s.given([created(sp)])
      .when(note(1, { kind: 'failed', reason: 'exit_code' }))
      .then([noted(1, 1)]);
    s.given([created(sp)])
      .when(note(1, { kind: 'failed', reason: 'timeout' }))
      .then([noted(1, 1), raised(1, ['timed_out'], { reason: 'timeout' })]);
    s.given([created(sp)])
      .when(note(1, { kind: 'skipped', byOverlap: false }))
      .thenNothing();
    s.given([created(sp)])
      .when(note(1, { kind: 'skipped', byOverlap: true }))
      .then([
        noted(1, 0),
        raised(1, ['skipped_by_overlap'], { outcome: 'skipped', reason: null, streak: 0 }),
      ]);
  });

  it('alerts the N-th failure in a row once, and the first success after failures', () => {
    const sp = spec({
      conditions: ['failures_in_row', 'recovered'],
      rateLimit: { max: 100, windowSeconds: 600 },
    });
    const history = [created(sp), noted(1, 1), noted(2, 2)];
    s.given(history)
      .when(note(3, failed))
      .then([noted(3, 3), raised(3, ['failures_in_row'], { streak: 3 })]);
    const after3 = [...history, noted(3, 3), raised(3, ['failures_in_row'], { streak: 3 })];
    s.given(after3)
      .when(note(4, failed))
      .then([noted(4, 4)]);
    s.given(after3)
      .when(note(4, { kind: 'completed' }))
      .then([noted(4, 0), raised(4, ['recovered'], { outcome: 'completed', reason: null, streak: 0 })]);
    // A success without failures before: nothing at all.
    s.given([created(sp)])
      .when(note(1, { kind: 'completed' }))
      .thenNothing();
  });

  it('rate limits per rule: past max in the window an alert is suppressed, and the next one says how many', () => {
    const two = [
      created(spec()),
      noted(1, 1),
      raised(1, ['run_failed']),
      noted(2, 2),
      raised(2, ['run_failed'], { streak: 2 }),
    ];
    s.given(two)
      .when(note(3, failed))
      .then([
        noted(3, 3),
        { type: 'AlertSuppressed', data: { alertId: alert(3), runId: run(3), conditions: ['run_failed'] } },
      ]);
    const suppressed: AlertRuleEvent = {
      type: 'AlertSuppressed',
      data: { alertId: alert(3), runId: run(3), conditions: ['run_failed'] },
    };
    // 601 s after the first: the window has room again, and the alert counts the one held back.
    s.given([...two, noted(3, 3), suppressed])
      .when(note(4, failed, 601))
      .then([noted(4, 4), raised(4, ['run_failed'], { streak: 4, suppressed: 1, sec: 601 })]);
  });

  it('test-fires an alert of a live rule', () => {
    s.given([])
      .when({ type: 'TestFireAlertRule', alertId: alert(9), at: at(0), by: 'u' })
      .thenThrows(NotFoundError);
  });
});
