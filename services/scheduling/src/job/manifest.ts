import { z } from 'zod';
import { DomainError } from '#libs/eventstore';
import {
  DASHBOARD_ENTRY_POINT,
  type JobKind,
  type JobManifest,
  type RefreshPropagation,
} from '#libs/contracts';
import { validateCron } from '../scheduler/cron.js';
import { everyRule, onceRule, parseTimeRule } from '../scheduler/time-rule.js';

/**
 * Job definitions of a manifest (dlt-runtime 0.26.1 engine 1, dlthub client engine 2) → the
 * pieces of a job spec. Pure; the rules are dlt's own (`dlt/_workspace/deployment/_trigger_helpers.py`,
 * `manifest.py` validation, `typing.py` TJobDefinition of dlt 1.26.0). docs/manifest.md.
 */

const MAX_TRIGGER = 600;

/** A TJobDefinition as sent (unknown keys kept in `definition`, not interpreted). */
export const jobDefinitionSchema = z
  .object({
    engine_version: z.number().int().optional(),
    job_ref: z.string().min(1).max(500),
    entry_point: z
      .object({
        module: z.string().min(1).max(500),
        function: z.string().min(1).max(200).nullable().optional(),
        job_type: z.enum(['batch', 'interactive', 'stream']),
        launcher: z.string().min(1).max(200).nullable().optional(),
        /** Forwarded to the launcher as TRuntimeEntryPoint.config (dlt's build_runtime_entry_point). */
        config: z.record(z.string(), z.unknown()).optional(),
      })
      .passthrough(),
    triggers: z.array(z.string().max(MAX_TRIGGER)).max(50),
    execute: z
      .object({
        timeout: z
          .object({ timeout: z.number().positive().optional(), grace_period: z.number().min(0).optional() })
          .passthrough()
          .nullable()
          .optional(),
        concurrency: z.number().int().min(1).nullable().optional(),
      })
      .passthrough()
      .optional(),
    description: z.string().max(10_000).nullable().optional(),
    expose: z
      .object({
        tags: z.array(z.string().min(1).max(200)).max(50).optional(),
        manual: z.boolean().optional(),
        interface: z.enum(['gui', 'rest_api', 'mcp']).optional(),
        display_name: z.string().max(500).optional(),
      })
      .passthrough()
      .optional(),
    deliver: z
      .object({ pipeline_name: z.string().min(1).max(500).optional() })
      .passthrough()
      .optional(),
    interval: z
      .object({
        start: z.string().min(1).max(100),
        end: z.string().max(100).nullable().optional(),
        /** How a backfill paces its slices (the newer clients' `interval.mode`; default sequential). */
        mode: z.enum(['sequential', 'parallel']).optional(),
      })
      .passthrough()
      .optional(),
    freshness: z.array(z.string().max(600)).max(50).optional(),
    refresh: z.enum(['always', 'auto', 'block']).optional(),
    refresh_propagation: z.enum(['always', 'auto', 'block']).optional(),
    allow_external_schedulers: z.boolean().optional(),
    incremental_mode: z.enum(['interval', 'pipeline']).optional(),
    default_trigger: z.string().max(MAX_TRIGGER).nullable().optional(),
    require: z
      .object({
        timezone: z.string().min(1).max(100).optional(),
        profile: z.string().max(64).optional(),
        /** requirements.json groups installed on top of its default_groups (docs/dependencies.md). */
        dependency_groups: z.array(z.string().min(1).max(200)).max(50).optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();
export type JobDefinition = z.infer<typeof jobDefinitionSchema>;

const JOB_REF = /^jobs\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
const PERIOD = /^(\d+(?:\.\d+)?)\s*([smhd])$/;
const MULT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** dlt's `parse_period_seconds`: `30s`, `5m`, `1.5h`, `1d`, or bare seconds. */
export function periodSeconds(text: string): number | undefined {
  const m = PERIOD.exec(text.trim());
  const n = m ? Number(m[1]) * MULT[m[2]!]! : /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text.trim()) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The trigger types a user may write (dlt's PARSERS minus the synthetic manual/tag/pipeline_name). */
const STORED_TYPES = [
  'schedule',
  'every',
  'once',
  'http',
  'deployment',
  'webhook',
  'job.success',
  'job.fail',
] as const;
type StoredType = (typeof STORED_TYPES)[number];

export interface ParsedTrigger {
  type: StoredType;
  expr: string;
  raw: string;
}

/**
 * A croniter expression (5 fields; 6 = seconds LAST, croniter's order) in Runway's cron grammar
 * (seconds FIRST), validated by libs/cron.
 */
export function croniterToRunway(expr: string): string {
  const f = expr.trim().split(/\s+/);
  const runway = f.length === 6 ? [f[5]!, ...f.slice(0, 5)].join(' ') : f.join(' ');
  return validateCron(runway);
}

/** One trigger string → its type and expression; throws a message naming the trigger. */
export function parseTrigger(raw: string): ParsedTrigger {
  const t = raw.trim();
  const colon = t.indexOf(':');
  if (colon < 0) {
    // A bare cron expression is normalized to schedule: (dlt's normalize_trigger).
    try {
      croniterToRunway(t);
    } catch {
      throw new Error(`trigger ${JSON.stringify(raw)} is neither "<type>:<expr>" nor a cron expression`);
    }
    return { type: 'schedule', expr: t, raw: `schedule:${t}` };
  }
  const type = t.slice(0, colon);
  const expr = t.slice(colon + 1);
  if (type === 'manual' || type === 'tag' || type === 'pipeline_name')
    throw new Error(
      `trigger ${JSON.stringify(raw)}: ${type}: is synthetic (derived from expose / deliver), it cannot be declared`,
    );
  if (!(STORED_TYPES as readonly string[]).includes(type))
    throw new Error(`trigger ${JSON.stringify(raw)}: unknown type ${JSON.stringify(type)}`);
  const st = type as StoredType;
  switch (st) {
    case 'schedule':
      if (!expr) throw new Error(`trigger ${JSON.stringify(raw)} requires a cron expression`);
      try {
        croniterToRunway(expr);
      } catch (err) {
        throw new Error(`trigger ${JSON.stringify(raw)}: ${(err as Error).message}`, { cause: err });
      }
      break;
    case 'every': {
      const s = periodSeconds(expr);
      if (s === undefined)
        throw new Error(`trigger ${JSON.stringify(raw)}: period must be like '5m', '1h', '1d'`);
      if (s < 60) throw new Error(`trigger ${JSON.stringify(raw)}: minimum period is 1 minute`);
      if (!Number.isInteger(s))
        throw new Error(`trigger ${JSON.stringify(raw)}: period must be whole seconds`);
      break;
    }
    case 'once':
      if (!Number.isFinite(Date.parse(expr)) || !/^\d{4}-\d{2}-\d{2}/.test(expr))
        throw new Error(`trigger ${JSON.stringify(raw)} requires an ISO 8601 timestamp`);
      break;
    case 'job.success':
    case 'job.fail':
      if (!JOB_REF.test(expr))
        throw new Error(`trigger ${JSON.stringify(raw)} requires a job ref (jobs.<section>.<name>)`);
      break;
    case 'http':
    case 'deployment':
    case 'webhook':
      break;
  }
  return { type: st, expr, raw: t };
}

/** What a manifest job makes of a job spec (the rest — profile, active — is the job's). */
export interface ManifestJobSpec {
  name: string;
  description: string;
  entryPoint: string;
  kind: JobKind;
  /** The cron (Runway grammar) or time rule from the `schedule:` / `every:` / `once:` trigger, null: none. */
  schedule: string | null;
  timezone: string;
  timeoutSeconds: number | null;
  overlapPolicy: 'skip' | 'allow';
  manifest: JobManifest;
}

export interface ManifestContext {
  engineVersion: 1 | 2;
  definitionHash: string;
  deploymentModule: string | null;
  /** Used as the anchor of a new `every:` trigger. */
  now: Date;
  /** The job's current schedule: an `every:` of the same period keeps its anchor. */
  currentSchedule: string | null;
}

function iso(text: string, what: string): string {
  const t = Date.parse(text);
  if (!Number.isFinite(t)) throw new Error(`${what} ${JSON.stringify(text)} is not an ISO 8601 time`);
  return new Date(t).toISOString();
}

/** dlt's launcher of its own workspace dashboard (`jobs.workspace.dashboard`; its module is dlt's, not deployed). */
export const DASHBOARD_LAUNCHER = 'dlt._workspace.deployment.launchers.dashboard';

/**
 * A job's entry point: the module's file, or, for an interactive job of dlt's dashboard launcher,
 * Runway's built-in dashboard (no deployed file: the launcher serves dlt's installed dashboard).
 */
function entryPointOf(ep: { module: string; launcher?: string | null | undefined }, kind: JobKind): string {
  return kind === 'interactive' && ep.launcher === DASHBOARD_LAUNCHER
    ? DASHBOARD_ENTRY_POINT
    : moduleFile(ep.module);
}

/** The file a module name is deployed as (`pkg.mod` → `pkg/mod.py`). */
export function moduleFile(module: string): string {
  return `${module.split('.').join('/')}.py`;
}

/**
 * One job definition → the job spec fields. Throws DomainError (400) naming the job ref and what
 * is wrong; the checks are dlt's (`manifest.py` validation).
 */
export function manifestJobSpec(def: JobDefinition, ctx: ManifestContext): ManifestJobSpec {
  const ref = def.job_ref;
  const fail = (msg: string): never => {
    throw new DomainError(`job ${ref}: ${msg}`);
  };
  if (!JOB_REF.test(ref)) fail('job_ref must be jobs.<section>.<name> or jobs.<name> (letters, digits, _)');
  if (def.entry_point.job_type === 'stream') fail('job_type stream is not supported by this server');
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(def.entry_point.module))
    fail(`entry_point.module ${JSON.stringify(def.entry_point.module)} is not a Python module name`);
  const kind: JobKind = def.entry_point.job_type === 'interactive' ? 'interactive' : 'batch';
  const triggers: ParsedTrigger[] = [];
  for (const raw of def.triggers) {
    try {
      const p = parseTrigger(raw);
      if (!triggers.some((t) => t.raw === p.raw)) triggers.push(p);
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const timed = triggers.filter((t) => t.type === 'schedule' || t.type === 'every');
  if (timed.length > 1) fail('at most one schedule: or every: trigger');
  if (triggers.filter((t) => t.type === 'once').length > 1) fail('at most one once: trigger');
  if (timed.length > 0 && triggers.some((t) => t.type === 'once'))
    fail('once: cannot be combined with schedule: or every:');
  if (kind === 'batch' && triggers.some((t) => t.type === 'http'))
    fail('http: triggers are for interactive jobs only');
  if (def.interval && timed.length === 0) fail('interval requires a schedule: or every: trigger');
  for (const t of triggers)
    if ((t.type === 'job.success' || t.type === 'job.fail') && t.expr === ref)
      fail(`a job cannot trigger on its own ${t.type.slice(4)}`);
  const freshness: string[] = [];
  for (const f of def.freshness ?? []) {
    const m = /^job\.is_fresh:(.+)$/.exec(f.trim());
    if (!m) {
      if (f.startsWith('job.is_matching_interval_fresh:'))
        fail(
          `freshness ${JSON.stringify(f)}: job.is_matching_interval_fresh is not enabled (dlt 1.26.0 disables it)`,
        );
      fail(`freshness ${JSON.stringify(f)} must be job.is_fresh:<job_ref>`);
    }
    const up = m![1]!;
    if (!JOB_REF.test(up)) fail(`freshness ${JSON.stringify(f)} must name a job ref`);
    if (up === ref) fail('a job cannot require its own freshness');
    if (!freshness.includes(up)) freshness.push(up);
  }
  const timezone = def.require?.timezone ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    fail(`require.timezone ${JSON.stringify(timezone)} is not an IANA time zone`);
  }
  let schedule: string | null = null;
  const t0 = timed[0];
  const once = triggers.find((t) => t.type === 'once');
  if (t0?.type === 'schedule') schedule = croniterToRunway(t0.expr);
  else if (t0?.type === 'every') {
    const secs = periodSeconds(t0.expr)!;
    const cur = ctx.currentSchedule ? parseTimeRule(ctx.currentSchedule) : undefined;
    schedule =
      cur?.kind === 'every' && cur.periodMs === secs * 1000
        ? ctx.currentSchedule
        : everyRule(secs, new Date(Math.floor(ctx.now.getTime() / 1000) * 1000));
  } else if (once) schedule = onceRule(new Date(iso(once.expr, 'once:')));
  let interval: JobManifest['interval'] = null;
  if (def.interval) {
    try {
      interval = {
        start: iso(def.interval.start, 'interval.start'),
        end: def.interval.end ? iso(def.interval.end, 'interval.end') : null,
      };
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const timeout = def.execute?.timeout?.timeout;
  const refreshPropagation: RefreshPropagation = def.refresh_propagation ?? def.refresh ?? 'auto';
  const stored = triggers.map((t) => t.raw);
  // dlt's default_trigger: the first schedule:/every:, else the first trigger not manual/deployment/job.*.
  const defaultTrigger =
    def.default_trigger ??
    timed[0]?.raw ??
    triggers.find((t) => !['deployment', 'job.success', 'job.fail'].includes(t.type))?.raw ??
    null;
  const concurrency = def.execute?.concurrency;
  return {
    name: ref,
    description: (def.description ?? '').slice(0, 10_000),
    entryPoint: entryPointOf(def.entry_point, kind),
    kind,
    schedule,
    timezone,
    timeoutSeconds: timeout === undefined ? null : Math.min(Math.max(1, Math.ceil(timeout)), 7 * 24 * 3600),
    // execute.concurrency (default 1): one run at a time skips a fire while a run is active.
    overlapPolicy: concurrency === 1 || concurrency === undefined ? 'skip' : 'allow',
    manifest: {
      jobRef: ref,
      engineVersion: ctx.engineVersion,
      definition: def,
      definitionHash: ctx.definitionHash,
      deploymentModule: ctx.deploymentModule,
      triggers: stored,
      defaultTrigger,
      launcher: def.entry_point.launcher ?? 'dlt._workspace.deployment.launchers.job',
      module: def.entry_point.module,
      function: def.entry_point.function ?? null,
      jobType: kind,
      interface: def.expose?.interface ?? null,
      interval,
      freshness,
      refreshPropagation,
      externalSchedulers: def.allow_external_schedulers ?? def.incremental_mode === 'pipeline',
      tags: def.expose?.tags ?? [],
      pipelineName: def.deliver?.pipeline_name ?? null,
      manual: def.expose?.manual ?? true,
      archived: false,
    },
  };
}

/** dlt's synthetic triggers of a job (`manual:<ref>`, `tag:<t>`, `pipeline_name:<p>`), for selectors. */
export function syntheticTriggers(m: JobManifest): string[] {
  return [
    ...(m.manual ? [`manual:${m.jobRef}`] : []),
    ...m.tags.map((t) => `tag:${t}`),
    ...(m.pipelineName ? [`pipeline_name:${m.pipelineName}`] : []),
  ];
}

const JOB_TYPE_SELECTORS = new Set(['batch', 'interactive', 'stream', 'job']);
const SELECTOR_KEYWORDS = [...STORED_TYPES, 'manual', 'tag', 'pipeline_name'];

/** fnmatch (`*`, `?`, `[…]`) as a RegExp. */
export function fnmatch(text: string, pattern: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, close);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's').test(text);
}

/**
 * dlt's `match_triggers_with_selectors`: the job's triggers (stored and synthetic) that any
 * selector matches; a job-type selector matches all of them.
 */
export function matchSelectors(
  jobType: JobKind,
  triggers: readonly string[],
  selectors: readonly string[],
): string[] {
  const matched: string[] = [];
  for (const selector of selectors) {
    if (JOB_TYPE_SELECTORS.has(selector)) {
      if ((selector === 'job' && jobType === 'batch') || jobType === selector) return [...triggers];
      continue;
    }
    const pattern = SELECTOR_KEYWORDS.includes(selector)
      ? `${selector}:*`
      : selector.includes(':') && selector.endsWith(':')
        ? `${selector}*`
        : selector;
    for (const t of triggers) if (!matched.includes(t) && fnmatch(t, pattern)) matched.push(t);
  }
  return matched;
}

/** dlt's `pick_trigger`: the default trigger when matched, else the first match. */
export function pickTrigger(matched: readonly string[], defaultTrigger: string | null): string | undefined {
  if (matched.length === 0) return undefined;
  return defaultTrigger && matched.includes(defaultTrigger) ? defaultTrigger : matched[0];
}
