import { DomainError, NotFoundError, type Decider } from '#libs/eventstore';
import type { RunFailureReason } from '#libs/contracts';
import type { AlertCondition, AlertRuleEvent, AlertRuleSpec } from './rule.events.js';

/** How a run ended, as the rule sees it. */
export type RunOutcome =
  | { kind: 'completed' }
  | { kind: 'failed'; reason: RunFailureReason }
  | { kind: 'skipped'; byOverlap: boolean };

/** Commands of the `alert-rule` aggregate (id = rule id). */
export type AlertRuleCommand =
  | { type: 'CreateAlertRule'; ruleId: string; spec: AlertRuleSpec; by: string }
  | { type: 'UpdateAlertRule'; spec: AlertRuleSpec; by: string }
  | { type: 'DeleteAlertRule'; by: string }
  | {
      type: 'NoteRunOutcome';
      alertId: string;
      runId: string;
      jobId: string;
      jobName: string | null;
      runNumber: number | null;
      outcome: RunOutcome;
      message: string;
      /** When the run ended (ISO): the rate limit's clock. */
      at: string;
    }
  | { type: 'TestFireAlertRule'; alertId: string; at: string; by: string };

/** Runs remembered per rule to raise at most one alert per run (older ones: the command id's window). */
export const SEEN_RUNS = 1000;

export interface AlertRuleState {
  status: 'none' | 'active' | 'deleted';
  spec: AlertRuleSpec | null;
  /** Per job: failed runs since its last completed one. */
  streaks: Record<string, number>;
  /** Runs already judged (latest last). */
  seen: string[];
  /** When the alerts inside the rate limit window were raised (ms, latest last). */
  raisedAt: number[];
  /** Alerts suppressed since the last raised one. */
  suppressed: number;
}

export const initialAlertRuleState = (): AlertRuleState => ({
  status: 'none',
  spec: null,
  streaks: {},
  seen: [],
  raisedAt: [],
  suppressed: 0,
});

function check(spec: AlertRuleSpec): void {
  if (!spec.webhook && !spec.email) throw new DomainError('an alert rule needs a webhook or an email target');
  if (new Set(spec.conditions).size !== spec.conditions.length)
    throw new DomainError('an alert rule lists a condition twice');
}

export function decideCreateAlertRule(
  c: Extract<AlertRuleCommand, { type: 'CreateAlertRule' }>,
  s: AlertRuleState,
): AlertRuleEvent[] {
  if (s.status !== 'none') throw new DomainError(`alert rule ${c.ruleId} exists already`);
  check(c.spec);
  return [{ type: 'AlertRuleCreated', data: { ruleId: c.ruleId, spec: c.spec, createdBy: c.by } }];
}

export function decideUpdateAlertRule(
  c: Extract<AlertRuleCommand, { type: 'UpdateAlertRule' }>,
  s: AlertRuleState,
): AlertRuleEvent[] {
  if (s.status !== 'active' || !s.spec) throw new NotFoundError('alert rule not found');
  check(c.spec);
  const before = s.spec;
  const changed = (Object.keys(c.spec) as (keyof AlertRuleSpec)[]).filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(c.spec[k]),
  );
  if (changed.length === 0) return [];
  return [{ type: 'AlertRuleUpdated', data: { spec: c.spec, changed, updatedBy: c.by } }];
}

export function decideDeleteAlertRule(
  c: Extract<AlertRuleCommand, { type: 'DeleteAlertRule' }>,
  s: AlertRuleState,
): AlertRuleEvent[] {
  if (s.status === 'none') throw new NotFoundError('alert rule not found');
  if (s.status === 'deleted') return [];
  return [{ type: 'AlertRuleDeleted', data: { deletedBy: c.by } }];
}

/** The conditions of `spec` a run's outcome meets, given the job's streak before and after it. */
export function matchedConditions(
  spec: AlertRuleSpec,
  outcome: RunOutcome,
  before: number,
  after: number,
): AlertCondition[] {
  const met = (c: AlertCondition): boolean => {
    switch (c) {
      case 'run_failed':
        return outcome.kind === 'failed';
      case 'timed_out':
        return outcome.kind === 'failed' && outcome.reason === 'timeout';
      case 'worker_lost':
        return outcome.kind === 'failed' && outcome.reason === 'worker_lost';
      case 'skipped_by_overlap':
        return outcome.kind === 'skipped' && outcome.byOverlap;
      case 'failures_in_row':
        return outcome.kind === 'failed' && after === spec.failuresInRow;
      case 'recovered':
        return outcome.kind === 'completed' && before > 0;
      default: {
        const never: never = c;
        return never;
      }
    }
  };
  return spec.conditions.filter(met);
}

/**
 * A run of a job ended: the job's streak moves (a failure adds one, a completion ends it), the
 * conditions it meets raise one alert (the run is judged once per rule), unless the rate limit
 * (at most `max` per window) is reached: then it is suppressed and counted into the next alert.
 */
export function decideNoteRunOutcome(
  c: Extract<AlertRuleCommand, { type: 'NoteRunOutcome' }>,
  s: AlertRuleState,
): AlertRuleEvent[] {
  const spec = s.spec;
  if (s.status !== 'active' || !spec || !spec.enabled) return [];
  if (spec.jobId !== null && spec.jobId !== c.jobId) return [];
  if (s.seen.includes(c.runId)) return [];
  const before = s.streaks[c.jobId] ?? 0;
  const after = c.outcome.kind === 'failed' ? before + 1 : c.outcome.kind === 'completed' ? 0 : before;
  const conditions = matchedConditions(spec, c.outcome, before, after);
  const events: AlertRuleEvent[] = [];
  if (after !== before || conditions.length > 0)
    events.push({ type: 'AlertRunNoted', data: { runId: c.runId, jobId: c.jobId, failuresInRow: after } });
  if (conditions.length === 0) return events;
  const now = Date.parse(c.at);
  const windowStart = now - spec.rateLimit.windowSeconds * 1000;
  const inWindow = s.raisedAt.filter((t) => t > windowStart).length;
  if (inWindow >= spec.rateLimit.max) {
    events.push({ type: 'AlertSuppressed', data: { alertId: c.alertId, runId: c.runId, conditions } });
    return events;
  }
  events.push({
    type: 'AlertRaised',
    data: {
      alertId: c.alertId,
      runId: c.runId,
      jobId: c.jobId,
      jobName: c.jobName,
      runNumber: c.runNumber,
      conditions,
      outcome: c.outcome.kind,
      reason: c.outcome.kind === 'failed' ? c.outcome.reason : null,
      message: c.message.slice(0, 4000),
      failuresInRow: after,
      endedAt: c.at,
      suppressed: s.suppressed,
      channels: channelsOf(spec),
    },
  });
  return events;
}

export function channelsOf(spec: AlertRuleSpec): ('webhook' | 'email')[] {
  return [...(spec.webhook ? (['webhook'] as const) : []), ...(spec.email ? (['email'] as const) : [])];
}

export function decideTestFire(
  c: Extract<AlertRuleCommand, { type: 'TestFireAlertRule' }>,
  s: AlertRuleState,
): AlertRuleEvent[] {
  if (s.status !== 'active' || !s.spec) throw new NotFoundError('alert rule not found');
  return [
    {
      type: 'AlertRaised',
      data: {
        alertId: c.alertId,
        runId: null,
        jobId: s.spec.jobId,
        jobName: s.spec.jobName,
        runNumber: null,
        conditions: ['test'],
        outcome: 'test',
        reason: null,
        message: `test alert of rule ${s.spec.name}, sent by ${c.by}`,
        failuresInRow: 0,
        endedAt: c.at,
        suppressed: 0,
        channels: channelsOf(s.spec),
      },
    },
  ];
}

function evolve(s: AlertRuleState, e: AlertRuleEvent): AlertRuleState {
  switch (e.type) {
    case 'AlertRuleCreated':
      return { ...s, status: 'active', spec: e.data.spec };
    case 'AlertRuleUpdated':
      return { ...s, spec: e.data.spec };
    case 'AlertRuleDeleted':
      return { ...s, status: 'deleted' };
    case 'AlertRunNoted': {
      const streaks = { ...s.streaks };
      if (e.data.failuresInRow === 0) delete streaks[e.data.jobId];
      else streaks[e.data.jobId] = e.data.failuresInRow;
      return { ...s, streaks, seen: [...s.seen, e.data.runId].slice(-SEEN_RUNS) };
    }
    case 'AlertRaised': {
      const at = Date.parse(e.data.endedAt);
      const windowMs = (s.spec?.rateLimit.windowSeconds ?? 86_400) * 1000;
      if (e.data.outcome === 'test') return s;
      return {
        ...s,
        raisedAt: [...s.raisedAt.filter((t) => t > at - windowMs), at],
        suppressed: 0,
      };
    }
    case 'AlertSuppressed':
      return { ...s, suppressed: s.suppressed + 1 };
    default: {
      const never: never = e;
      return never;
    }
  }
}

export const alertRuleDecider: Decider<AlertRuleState, AlertRuleCommand, AlertRuleEvent> = {
  initialState: initialAlertRuleState,
  evolve,
  decide: (command, state) => {
    switch (command.type) {
      case 'CreateAlertRule':
        return decideCreateAlertRule(command, state);
      case 'UpdateAlertRule':
        return decideUpdateAlertRule(command, state);
      case 'DeleteAlertRule':
        return decideDeleteAlertRule(command, state);
      case 'NoteRunOutcome':
        return decideNoteRunOutcome(command, state);
      case 'TestFireAlertRule':
        return decideTestFire(command, state);
      default: {
        const never: never = command;
        throw new Error(`unknown alert rule command ${JSON.stringify(never)}`);
      }
    }
  },
};
