import type { Command } from 'commander';
import { validateCron } from '#libs/cron';
import { ClientError, type Job, type RunwayClient } from '#libs/client';
import { CliError } from '../instance.js';
import { openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';
import { syncForJob } from './sync.js';

const MISSED = ['run_once', 'skip', 'run_all'] as const;
/** The zone of a schedule set without --tz (`schedule`, `job create --schedule`). */
export const DEFAULT_ZONE = 'UTC';
const OVERLAP = ['skip', 'queue', 'allow'] as const;

/** The server's own check (field by field, ranges and steps), before anything is deployed: exit 2. */
export function checkCronLocally(cron: string): void {
  try {
    validateCron(cron);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), 2);
  }
}

export function checkZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new CliError(
      `invalid time zone ${JSON.stringify(tz)}: expected an IANA name such as "Europe/Berlin" or "UTC"`,
      2,
    );
  }
}

function oneOf<T extends string>(
  what: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw new CliError(`invalid ${what} ${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`, 2);
  return value as T;
}

interface ScheduleOptions {
  tz?: string;
  missed?: string;
  overlap?: string;
  current?: boolean;
  description?: string;
}

/**
 * `runway schedule <script> "<cron>" [--tz <zone>] [--missed <policy>] [--overlap <policy>]` and
 * `runway schedule <script> cancel [--current]`, as `dlt runtime schedule` (deploy and
 * configuration sync first; the job is the script path; `cancel` sends schedule null).
 */
export function registerSchedule(program: Command, g: () => GlobalOptions): void {
  const say = (m: string) => (g().json ? process.stderr : process.stdout).write(`${m}\n`);
  const note = (m: string) => {
    if (!g().json) process.stderr.write(`${m}\n`);
  };

  program
    .command('schedule')
    .description(
      'run a script on a cron schedule: schedule <script> "<cron>" [--tz <zone>] | schedule <script> cancel [--current]',
    )
    .argument('<script>', 'entry point, relative to the workspace root (also the job name)')
    .argument('<cron|cancel>', 'cron expression, 5 fields (6 with seconds first), or "cancel"')
    .option('--tz <zone>', 'IANA time zone of the schedule (default: UTC, whatever zone the job had)')
    .option('--missed <policy>', `fire times missed while the scheduler was down: ${MISSED.join(' | ')}`)
    .option('--overlap <policy>', `a fire while a run of the job is still active: ${OVERLAP.join(' | ')}`)
    .option('--current', 'with cancel: also cancel the latest run')
    .option('--description <text>', 'job description')
    .action(async (entryPoint: string, what: string, opts: ScheduleOptions) => {
      if (what === 'cancel') {
        for (const o of ['tz', 'missed', 'overlap'] as const)
          if (opts[o] !== undefined) throw new CliError(`--${o} does not go with cancel`, 2);
        const { c, wsId } = await openSession(g(), note);
        await cancel(c, wsId, entryPoint, opts.current ?? false);
        return;
      }
      if (opts.current) throw new CliError('--current goes with cancel only', 2);
      checkCronLocally(what);
      if (opts.tz !== undefined) checkZone(opts.tz);
      const missed = oneOf('--missed policy', opts.missed, MISSED);
      const overlap = oneOf('--overlap policy', opts.overlap, OVERLAP);
      const { ws, c, wsId } = await openSession(g(), note);
      await syncForJob(c, wsId, ws, entryPoint, note);
      // No --tz means UTC, always (not the zone the job had): the zone printed below is the one used.
      if (opts.tz === undefined) note('Time zone: UTC (the default without --tz)');
      const job = await c.upsertJob(wsId, {
        name: entryPoint,
        entry_point: entryPoint,
        kind: 'batch',
        schedule: what.trim(),
        ...(opts.description !== undefined ? { description: opts.description } : {}),
        timezone: opts.tz ?? DEFAULT_ZONE,
        ...(missed ? { missed_policy: missed } : {}),
        ...(overlap ? { overlap_policy: overlap } : {}),
      });
      printOut(g(), job, () => describe(job));
    });

  function describe(job: Job): string {
    return (
      `Scheduled ${job.name} with cron "${job.schedule ?? ''}" (${job.timezone ?? 'UTC'}), next run at ${
        job.next_scheduled_run ?? 'never (inactive)'
      }\n` +
      `Job version #${job.version}; missed fire times: ${job.missed_policy ?? 'run_once'}, overlap: ${
        job.overlap_policy ?? 'skip'
      }\n`
    );
  }

  async function cancel(c: RunwayClient, wsId: string, named: string, current: boolean): Promise<void> {
    const job = await c.getJob(wsId, named);
    if (job.schedule === null) {
      // As dlt: nothing to cancel, not even with --current.
      say(`${job.name} is not a scheduled job`);
      if (g().json) process.stdout.write(JSON.stringify(job, null, 2) + '\n');
      return;
    }
    const updated = await c.upsertJob(wsId, {
      name: job.name,
      entry_point: job.entry_point,
      kind: job.kind,
      description: job.description,
      schedule: null,
    });
    say(`Schedule "${job.schedule}" of ${job.name} cancelled (job version #${updated.version})`);
    if (!current) {
      if (g().json) process.stdout.write(JSON.stringify(updated, null, 2) + '\n');
      return;
    }
    const latest = (await c.listRuns(wsId, { jobId: job.id, limit: 1 })).items[0];
    if (!latest) {
      say(`${job.name} has no run to cancel`);
      return;
    }
    try {
      const run = await c.cancelRun(wsId, latest.id);
      say(`Requested cancellation of run #${run.number} of ${job.name} (status: ${run.status})`);
    } catch (err) {
      if (err instanceof ClientError && err.status === 400 && /terminal state/i.test(err.detail)) {
        say(`Run #${latest.number} of ${job.name} already ended (${latest.status})`);
        return;
      }
      throw err;
    }
  }
}
