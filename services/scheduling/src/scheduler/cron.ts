import { CronExpressionParser } from 'cron-parser';

const FIELDS_5 = ['minute', 'hour', 'day of month', 'month', 'day of week'] as const;
const FIELDS_6 = ['second', ...FIELDS_5] as const;

/**
 * Checks a cron expression (5 fields, or 6 with seconds first) and returns it normalized
 * (single spaces). Throws an Error whose message names the field at fault, e.g.
 * `invalid schedule "61 * * * *": minute 61 out of range 0-59`.
 */
export function validateCron(expr: string): string {
  const fields = expr.trim().split(/\s+/);
  const prefix = `invalid schedule ${JSON.stringify(expr)}`;
  if (fields.length !== 5 && fields.length !== 6)
    throw new Error(
      `${prefix}: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${fields.length}`,
    );
  const names = fields.length === 5 ? FIELDS_5 : FIELDS_6;
  // Each field on its own (the others '*'), so the error names the field.
  fields.forEach((f, i) => {
    const probe = fields.map((g, j) => (j === i ? g : '*')).join(' ');
    try {
      CronExpressionParser.parse(probe, { tz: 'UTC' });
    } catch (err) {
      const msg = (err as Error).message;
      const range = /got value (\S+) expected range (\S+)/.exec(msg);
      if (range)
        throw new Error(`${prefix}: ${names[i]} ${range[1]} out of range ${range[2]}`, { cause: err });
      throw new Error(`${prefix}: ${names[i]} ${JSON.stringify(f)}: ${msg}`, { cause: err });
    }
  });
  const normalized = fields.join(' ');
  try {
    CronExpressionParser.parse(normalized, { tz: 'UTC' }).next();
  } catch (err) {
    throw new Error(`${prefix}: ${(err as Error).message}`, { cause: err });
  }
  return normalized;
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

/** The first fire time strictly after `after`. null if the expression never fires again. */
export function nextFire(expr: string, tz: string, after: Date): Date | null {
  try {
    const it = CronExpressionParser.parse(expr, { currentDate: after, tz });
    const d = it.next().toDate();
    return d.getTime() > after.getTime() ? d : null;
  } catch {
    return null;
  }
}

/**
 * Whether `at` is a fire time of the expression in the zone (to the millisecond). A time in a
 * skipped DST hour moves to the next valid instant only when the iteration starts before the gap,
 * so a miss of the quick check looks again from 3 hours earlier.
 */
export function isFireTime(expr: string, tz: string, at: Date): boolean {
  const t = at.getTime();
  if (nextFire(expr, tz, new Date(t - 1))?.getTime() === t) return true;
  const { fires } = dueFires(expr, tz, new Date(t - 3 * 3600_000), at, 1);
  return fires[0]?.getTime() === t;
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
  const fires: Date[] = [];
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
    if (d.getTime() > until.getTime()) return { fires, count, next: d };
    count++;
    fires.push(d);
    if (fires.length > limit) fires.shift();
  }
  return { fires, count, next: null };
}
