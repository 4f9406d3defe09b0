import { CronExpressionParser } from 'cron-parser';

import { parseTimeRule, ruleDue, ruleIsFire, ruleNext, ruleShortestInterval } from './time-rule.js';

/** The grammar (ranges and steps per field, errors naming the field) is shared with the CLI. */
export { validateCron } from '#libs/cron';

// Every function below also takes the time rules of manifest triggers (`every:…@…`, `once:…`,
// time-rule.ts) where a cron expression goes: they are stored as a job's schedule.

const smallestStep = (values: readonly number[]): number => {
  let min = Infinity;
  for (let i = 1; i < values.length; i++) min = Math.min(min, values[i]! - values[i - 1]!);
  return min;
};

/** Fires sampled by shortestInterval (from a fixed instant, so the result depends only on `expr`), over a year at most. */
const INTERVAL_SAMPLES = 64;
const SAMPLE_SPAN_MS = 400 * 86_400_000;
const SAMPLE_FROM = new Date('2000-01-01T00:00:00Z');

/**
 * The shortest time between two fires of a valid cron expression, in seconds (Infinity if it
 * fires at most once). From the expression's finest field that lists several values (two fires in
 * one minute, or one hour, or one day), and from its first fires after a fixed instant, which also
 * catch the steps across a field's wrap (`0,59 * * * * *`: 59 s and 1 s apart).
 */
export function shortestInterval(expr: string): number {
  const rule = parseTimeRule(expr);
  if (rule) return ruleShortestInterval(rule);
  return intervalMemo.get(expr, () => computeShortestInterval(expr));
}

function computeShortestInterval(expr: string): number {
  const parsed = CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: SAMPLE_FROM });
  const f = parsed.fields;
  let min = Infinity;
  if (f.second.values.length > 1) min = smallestStep(f.second.values);
  else if (f.minute.values.length > 1) min = 60 * smallestStep(f.minute.values);
  else if (f.hour.values.length > 1) min = 3600 * smallestStep(f.hour.values);
  let prev: number | undefined;
  for (let i = 0; i < INTERVAL_SAMPLES && parsed.hasNext(); i++) {
    const t = parsed.next().getTime();
    if (prev !== undefined) min = Math.min(min, (t - prev) / 1000);
    prev = t;
    if (t - SAMPLE_FROM.getTime() > SAMPLE_SPAN_MS) break;
  }
  return min;
}

/** Checks an IANA time zone name; throws `invalid time zone "…"`. */
export function validateTimezone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch (err) {
    throw new Error(
      `invalid time zone ${JSON.stringify(tz)}: expected an IANA name such as "Europe/Berlin" or "UTC"`,
      {
        cause: err,
      },
    );
  }
  return tz;
}

/**
 * Results of the pure functions below, by their arguments. Thousands of jobs share a schedule and
 * fire at the same instant, so they ask the same questions (next fire after the same time, is this
 * a fire time) within one tick; parsing the expression each time was most of the scheduler's CPU.
 * Bounded: cleared when full (the working set is one or two entries per schedule and instant).
 */
class Memo<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max = 20_000) {}
  get(key: string, compute: () => V): V {
    const hit = this.map.get(key);
    if (hit !== undefined || this.map.has(key)) return hit as V;
    const v = compute();
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(key, v);
    return v;
  }
}

const nextMemo = new Memo<number | null>();
const fireTimeMemo = new Memo<boolean>();
const intervalMemo = new Memo<number>(1000);
const dueMemo = new Memo<{ fires: number[]; count: number; next: number | null }>();

/** The first fire time strictly after `after`. null if the expression never fires again. */
export function nextFire(expr: string, tz: string, after: Date): Date | null {
  const rule = parseTimeRule(expr);
  if (rule) {
    const n = ruleNext(rule, after.getTime());
    return n === null ? null : new Date(n);
  }
  const t = nextMemo.get(`${expr}\u0000${tz}\u0000${after.getTime()}`, () => {
    try {
      const it = CronExpressionParser.parse(expr, { currentDate: after, tz });
      const d = it.next().toDate();
      return d.getTime() > after.getTime() ? d.getTime() : null;
    } catch {
      return null;
    }
  });
  return t === null ? null : new Date(t);
}

/**
 * Whether `at` is a fire time of the expression in the zone (to the millisecond). A time in a
 * skipped DST hour moves to the next valid instant only when the iteration starts before the gap,
 * so a miss of the quick check looks again from 3 hours earlier.
 */
export function isFireTime(expr: string, tz: string, at: Date): boolean {
  const t = at.getTime();
  const rule = parseTimeRule(expr);
  if (rule) return ruleIsFire(rule, t);
  return fireTimeMemo.get(`${expr}\u0000${tz}\u0000${t}`, () => {
    if (nextFire(expr, tz, new Date(t - 1))?.getTime() === t) return true;
    const { fires } = dueFires(expr, tz, new Date(t - 3 * 3600_000), at, 1);
    return fires[0]?.getTime() === t;
  });
}

/**
 * Fire times in (after, until], ascending, at most `limit` of the latest ones (`count` is the
 * total, the scan capped at `scanCap` to bound the work after a very long downtime), and `next`,
 * the first fire time after `until` (null: none, or beyond the cap).
 */
export function dueFires(
  expr: string,
  tz: string,
  after: Date,
  until: Date,
  limit: number,
  scanCap = 100_000,
): { fires: Date[]; count: number; next: Date | null } {
  const rule = parseTimeRule(expr);
  if (rule) {
    const r = ruleDue(rule, after.getTime(), until.getTime(), limit);
    return {
      fires: r.fires.map((t) => new Date(t)),
      count: r.count,
      next: r.next === null ? null : new Date(r.next),
    };
  }
  const key = [expr, tz, after.getTime(), until.getTime(), limit, scanCap].join('\u0000');
  const r = dueMemo.get(key, () => scanFires(expr, tz, after, until, limit, scanCap));
  return {
    fires: r.fires.map((t) => new Date(t)),
    count: r.count,
    next: r.next === null ? null : new Date(r.next),
  };
}

function scanFires(
  expr: string,
  tz: string,
  after: Date,
  until: Date,
  limit: number,
  scanCap: number,
): { fires: number[]; count: number; next: number | null } {
  const fires: number[] = [];
  let count = 0;
  let it;
  try {
    // No endDate: the first time after `until` is the next fire (one parse for both).
    it = CronExpressionParser.parse(expr, { currentDate: after, tz });
  } catch {
    return { fires, count, next: null };
  }
  for (let scanned = 0; scanned < scanCap; scanned++) {
    let d: Date;
    try {
      d = it.next().toDate();
    } catch {
      return { fires, count, next: null }; // never fires again
    }
    if (d.getTime() <= after.getTime()) continue;
    if (d.getTime() > until.getTime()) return { fires, count, next: d.getTime() };
    count++;
    fires.push(d.getTime());
    if (fires.length > limit) fires.shift();
  }
  return { fires, count, next: null };
}

/** The latest fire time at or before `at` (dlt's `cron_floor`), null: none. */
export function prevFire(expr: string, tz: string, at: Date): Date | null {
  const t = at.getTime();
  const rule = parseTimeRule(expr);
  if (rule) {
    if (rule.kind === 'once') return rule.atMs <= t ? new Date(rule.atMs) : null;
    const k = Math.floor((t - rule.anchorMs) / rule.periodMs);
    return k >= 1 ? new Date(rule.anchorMs + k * rule.periodMs) : null;
  }
  try {
    const it = CronExpressionParser.parse(expr, { currentDate: new Date(t + 1), tz });
    return it.prev().toDate();
  } catch {
    return null;
  }
}
