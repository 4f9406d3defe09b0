/**
 * Time rules of manifest triggers that are not cron (docs/manifest.md), stored as a job's
 * schedule so the scheduler, its missed / overlap policies and its no-double guarantee apply:
 *
 * - `every:<seconds>@<anchor ISO>`: fire times `anchor + k·period`, k ≥ 1 (dlt: the first run
 *   waits one period after the job got the trigger, then every period).
 * - `once:<ISO>`: one fire time.
 */
export type TimeRule = { kind: 'every'; periodMs: number; anchorMs: number } | { kind: 'once'; atMs: number };

const EVERY = /^every:(\d+)@(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z)$/;
const ONCE = /^once:(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z)$/;

/** Whether a stored schedule is a time rule (else a cron expression). */
export function isTimeRule(expr: string): boolean {
  return expr.startsWith('every:') || expr.startsWith('once:');
}

/** The rule of a stored schedule; undefined when it is not a valid time rule. */
export function parseTimeRule(expr: string): TimeRule | undefined {
  const e = EVERY.exec(expr);
  if (e) {
    const periodMs = Number(e[1]) * 1000;
    const anchorMs = Date.parse(e[2]!);
    if (periodMs > 0 && Number.isFinite(anchorMs)) return { kind: 'every', periodMs, anchorMs };
    return undefined;
  }
  const o = ONCE.exec(expr);
  if (o) {
    const atMs = Date.parse(o[1]!);
    return Number.isFinite(atMs) ? { kind: 'once', atMs } : undefined;
  }
  return undefined;
}

/** The stored form of `every:` with a period in whole seconds from `anchor`. */
export function everyRule(periodSeconds: number, anchor: Date): string {
  return `every:${periodSeconds}@${anchor.toISOString()}`;
}

/** The stored form of `once:`. */
export function onceRule(at: Date): string {
  return `once:${at.toISOString()}`;
}

/** The first fire time strictly after `after` (ms), null: none. */
export function ruleNext(rule: TimeRule, after: number): number | null {
  if (rule.kind === 'once') return rule.atMs > after ? rule.atMs : null;
  const k = Math.max(1, Math.floor((after - rule.anchorMs) / rule.periodMs) + 1);
  return rule.anchorMs + k * rule.periodMs;
}

/** Whether `at` (ms) is a fire time of the rule. */
export function ruleIsFire(rule: TimeRule, at: number): boolean {
  if (rule.kind === 'once') return at === rule.atMs;
  const d = at - rule.anchorMs;
  return d > 0 && d % rule.periodMs === 0;
}

/** Fire times in (after, until], at most the latest `limit`, their count and the next after `until`. */
export function ruleDue(
  rule: TimeRule,
  after: number,
  until: number,
  limit: number,
): { fires: number[]; count: number; next: number | null } {
  const fires: number[] = [];
  let count = 0;
  let t = ruleNext(rule, after);
  while (t !== null && t <= until) {
    count++;
    fires.push(t);
    if (fires.length > limit) fires.shift();
    if (rule.kind === 'once') {
      t = null;
      break;
    }
    // Skip straight to the window of the latest `limit` fire times (a long downtime).
    const remaining = Math.floor((until - t) / rule.periodMs);
    if (remaining > limit + 1) {
      count += remaining - limit - 1;
      fires.length = 0;
      t += (remaining - limit) * rule.periodMs;
      continue;
    }
    t += rule.periodMs;
  }
  return { fires, count, next: t };
}

/** The shortest time between two fires, seconds (Infinity for `once:`). */
export function ruleShortestInterval(rule: TimeRule): number {
  return rule.kind === 'once' ? Infinity : rule.periodMs / 1000;
}
