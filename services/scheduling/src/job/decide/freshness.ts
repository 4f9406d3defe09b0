/** Ports of dlt's interval.py: the freshness of upstreams and the interval of a run. */

import type { JobKind, JobSpec, RunInterval } from '#libs/contracts';
import { prevFire } from '../../scheduler/cron.js';
import { parseTimeRule } from '../../scheduler/time-rule.js';
import type { JobState } from '../job.state.js';

/** An upstream job of a freshness constraint, as its own aggregate has it. */
export interface UpstreamState {
  jobRef: string;
  exists: boolean;
  kind: JobKind | null;
  /** Its schedule (cron or time rule) and zone. */
  schedule: string | null;
  timezone: string;
  defaultTrigger: string | null;
  /** The interval end of its last successful run (null: never, or reset by a refresh). */
  lastIntervalEnd: string | null;
}

/**
 * dlt's `check_all_upstream_run_fresh` (dlt/_workspace/deployment/interval.py, dlt 1.26.0): the
 * reasons the upstreams are not fresh at `now` (empty: all fresh).
 */
export function staleUpstreams(upstreams: readonly UpstreamState[], now: Date): string[] {
  const reasons: string[] = [];
  for (const u of upstreams) {
    if (!u.exists) {
      reasons.push(`upstream ${u.jobRef} does not exist`);
      continue;
    }
    if (u.kind === 'interactive') {
      reasons.push(`upstream ${u.jobRef} is an interactive job (cannot be fresh)`);
      continue;
    }
    if (!u.lastIntervalEnd) {
      reasons.push(`upstream ${u.jobRef} didn't process any intervals yet (refresh pending)`);
      continue;
    }
    const type = u.defaultTrigger?.split(':')[0];
    const end = Date.parse(u.lastIntervalEnd);
    if (type === 'schedule' && u.schedule) {
      const expected = prevFire(u.schedule, u.timezone, now);
      if (expected && end < expected.getTime())
        reasons.push(`upstream ${u.jobRef} missing run for ${expected.toISOString()}`);
    } else if (type === 'every' && u.schedule) {
      const rule = parseTimeRule(u.schedule);
      const period = rule?.kind === 'every' ? rule.periodMs : undefined;
      const elapsed = now.getTime() - end;
      if (period !== undefined && elapsed >= period)
        reasons.push(
          `upstream ${u.jobRef} has a missing run (last ${Math.round(elapsed / 1000)}s ago, period ${period / 1000}s)`,
        );
    }
    // event / manual: any completed interval is enough.
  }
  return reasons;
}

/**
 * dlt's `compute_run_interval` for a run of a manifest job: `schedule:` → [last successful
 * interval end, or the previous tick; the tick), `every:` → [last end, or now − period; now),
 * `once:` → [once, once), anything else → [now, now). Interval jobs start at `interval.start`
 * when no run completed (or a refresh reset it) and are clamped to `interval.start/end`.
 */
export function runInterval(
  spec: JobSpec,
  state: JobState,
  source: string,
  at: Date,
  fireAt: string | undefined,
  refresh: boolean,
): RunInterval {
  const m = spec.manifest;
  const type = source.split(':')[0];
  const iso = (d: Date) => d.toISOString();
  if (type === 'once') {
    const t = new Date(source.slice('once:'.length));
    return Number.isFinite(t.getTime()) ? { start: iso(t), end: iso(t) } : { start: iso(at), end: iso(at) };
  }
  if ((type !== 'schedule' && type !== 'every') || spec.schedule === null || !m)
    return { start: iso(at), end: iso(at) };
  const tz = spec.timezone ?? 'UTC';
  const rule = parseTimeRule(spec.schedule);
  const end = fireAt ? new Date(fireAt) : type === 'every' ? at : (prevFire(spec.schedule, tz, at) ?? at);
  const prevEnd = refresh ? null : (state.lastIntervalEnd ?? null);
  let start: Date;
  if (prevEnd) start = new Date(prevEnd);
  else if (m.interval) {
    const declared = new Date(m.interval.start);
    start = rule ? declared : (prevFire(spec.schedule, tz, declared) ?? declared);
  } else if (rule?.kind === 'every') start = new Date(end.getTime() - rule.periodMs);
  else start = prevFire(spec.schedule, tz, new Date(end.getTime() - 1)) ?? end;
  let e = end;
  if (m.interval) {
    const lo = Date.parse(m.interval.start);
    if (start.getTime() < lo) start = new Date(lo);
    if (m.interval.end && e.getTime() > Date.parse(m.interval.end)) e = new Date(m.interval.end);
  }
  if (start.getTime() > e.getTime()) start = e;
  return { start: iso(start), end: iso(e) };
}
