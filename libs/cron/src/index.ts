import { CronExpressionParser } from 'cron-parser';

/*
 * The cron grammar Runway accepts, one for the scheduling service (which refuses a job spec with
 * anything else, 400) and the CLI (which checks before it deploys anything, exit 2).
 */

const FIELDS_5 = ['minute', 'hour', 'day of month', 'month', 'day of week'] as const;
const FIELDS_6 = ['second', ...FIELDS_5] as const;
type Field = (typeof FIELDS_6)[number];

/** Each field's values (day of week: 0-7, both Sunday; its steps count from 0 to 6). */
const RANGES: Record<Field, { min: number; max: number }> = {
  second: { min: 0, max: 59 },
  minute: { min: 0, max: 59 },
  hour: { min: 0, max: 23 },
  'day of month': { min: 1, max: 31 },
  month: { min: 1, max: 12 },
  'day of week': { min: 0, max: 6 },
};

/**
 * What cron-parser accepts but a schedule must not hold: a step larger than the field's range
 * (`*\/61` in minutes fires only at :00), `?` outside the day fields, and `H` (a random value,
 * different in each process that reads the expression).
 */
function checkFieldSyntax(field: Field, text: string): string | undefined {
  const { min, max } = RANGES[field];
  for (const part of text.split(',')) {
    if (/(^|[^a-z])h([^a-z]|$)/i.test(part))
      return `${field} ${JSON.stringify(text)}: H (a random value) is not supported, give the value`;
    if (part.includes('?') && field !== 'day of month' && field !== 'day of week')
      return `${field} ${JSON.stringify(text)}: ? is allowed only in day of month and day of week`;
    const slash = part.indexOf('/');
    if (slash < 0) continue;
    const step = part.slice(slash + 1);
    if (!/^\d+$/.test(step))
      return `${field} ${JSON.stringify(text)}: the step after / must be a whole number from 1 to ${max - min}`;
    const n = Number(step);
    if (n < 1 || n > max - min)
      return `${field} step ${step} out of range 1-${max - min} (the field's values are ${min}-${max})`;
  }
  return undefined;
}

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
    const wrong = checkFieldSyntax(names[i]!, f);
    if (wrong) throw new Error(`${prefix}: ${wrong}`);
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
