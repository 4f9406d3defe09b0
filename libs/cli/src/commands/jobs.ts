import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import {
  ClientError,
  sleep,
  TERMINAL_RUN_STATUSES,
  type Job,
  type Run,
  type RunwayClient,
} from '#libs/client';
import { CliError } from '../instance.js';
import { table } from '../output.js';
import { openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';
import { checkZone, DEFAULT_ZONE } from './schedule.js';
import { requireLocalFile, syncForJob } from './sync.js';

/** Writes with backpressure (a slow terminal or pipe slows the follow, nothing piles up). */
const write = (to: NodeJS.WritableStream, text: string, signal: AbortSignal) =>
  to.write(text)
    ? undefined
    : new Promise<void>((r) => {
        to.once('drain', () => r());
        signal.addEventListener('abort', () => r(), { once: true });
      });
const isTerminal = (status: string) => TERMINAL_RUN_STATUSES.includes(status);

const jobRow = (j: Job) => ({
  Name: j.name,
  'Entry point': j.entry_point,
  Type: j.kind,
  'Version #': j.version,
  Schedule: j.schedule ?? '',
  'Time zone': j.timezone ?? '',
  Profile: j.profile ?? '',
  'Last run': j.last_run ? `#${j.last_run.number} ${j.last_run.status}` : '',
  Description: j.description,
});
const runRow = (r: Run) => ({
  'Run #': r.number,
  Script: r.job?.name ?? r.job_id,
  Status: r.status,
  Trigger: r.trigger,
  Profile: r.profile ?? '',
  'Created at': r.date_added,
  Started: r.time_started ?? '',
  Ended: r.time_ended ?? '',
  Duration: r.duration ?? '',
  Failure: r.failure_reason
    ? `${r.failure_reason}${r.exit_code !== null ? ` (exit code ${r.exit_code})` : ''}`
    : '',
});

/** The error a run that did not complete ends the command with (exit 1; `--json`: code run_<status>). */
function runFailed(r: Run): CliError {
  return new CliError(failureText(r), 1, `run_${r.status}`, {
    run: {
      id: r.id,
      number: r.number,
      job: r.job?.name ?? r.job_id,
      status: r.status,
      failure_reason: r.failure_reason ?? null,
      exit_code: r.exit_code ?? null,
    },
  });
}

/** Why a run did not complete, in one line. */
function failureText(r: Run): string {
  const name = r.job?.name ?? r.job_id;
  if (r.status === 'cancelled') return `run #${r.number} of ${name} was cancelled`;
  const parts = [r.failure_reason ?? 'unknown reason'];
  if (r.exit_code !== null && r.exit_code !== undefined) parts.push(`exit code ${r.exit_code}`);
  if (r.signal) parts.push(`signal ${r.signal}`);
  return `run #${r.number} of ${name} ${r.status}: ${parts.join(', ')}${r.message ? ` (${r.message})` : ''}`;
}

/** Splits `[op] [job] [N]` in any order. */
function parseArgs(args: string[], ops: string[], dflt: string): { op: string; job?: string; n?: number } {
  let op: string | undefined;
  let job: string | undefined;
  let n: number | undefined;
  for (const a of args) {
    if (/^\d+$/.test(a) && job !== undefined) {
      if (n !== undefined) throw new CliError(`unexpected ${a}: give one run number`, 2);
      n = Number(a);
    } else if (ops.includes(a) && op === undefined) {
      op = a;
    } else if (job === undefined) {
      job = a;
    } else
      throw new CliError(`unexpected argument ${a}: expected ${ops.join('|')}, a script and a number`, 2);
  }
  return { op: op ?? dflt, job, n: n === 0 ? undefined : n };
}

/** The job a command names (the CLI's user-facing word, as dlt's, is script). */
function requireJob(job: string | undefined, usage: string): string {
  if (!job) throw new CliError(`missing script: ${usage}`, 2);
  return job;
}

/**
 * The job whose runs a command names: a live job, else a deleted one (its runs are kept) as the
 * job of its latest run. The server's 404 (`script x not found`) when neither has the name.
 */
async function jobOfRuns(c: RunwayClient, wsId: string, named: string): Promise<Job> {
  try {
    return await c.getJob(wsId, named);
  } catch (err) {
    if (!(err instanceof ClientError && err.status === 404)) throw err;
    const job = (await c.listRuns(wsId, { job: named, limit: 1 })).items[0]?.job;
    if (!job) throw new CliError(`script ${named} was deleted and has no runs`);
    return job;
  }
}

/** Run N of a job (default: the latest). Run numbers of a job have no gaps, newest first. */
async function findRun(c: RunwayClient, wsId: string, job: Job, n?: number): Promise<Run> {
  const latest = (await c.listRuns(wsId, { jobId: job.id, limit: 1 })).items[0];
  if (!latest) throw new CliError(`script ${job.name} has no runs`);
  if (n === undefined || n === latest.number) return latest;
  if (n < latest.number) {
    const at = (await c.listRuns(wsId, { jobId: job.id, limit: 1, offset: latest.number - n })).items[0];
    if (at?.number === n) return at;
    // Fallback: scan.
    for (let offset = 0; ; offset += 100) {
      const page = await c.listRuns(wsId, { jobId: job.id, limit: 100, offset });
      const hit = page.items.find((r) => r.number === n);
      if (hit) return hit;
      if (page.items.length < 100) break;
    }
  }
  throw new CliError(`run #${n} of script ${job.name} not found (latest is #${latest.number})`);
}

export function registerJobs(program: Command, g: () => GlobalOptions): void {
  /** launch's notes (job, run, status changes): stderr, so stdout holds only the run's log (or the JSON). */
  const say = (m: string) => process.stderr.write(`${m}\n`);
  const note = (m: string) => {
    if (!g().json) process.stderr.write(`${m}\n`);
  };
  const session = () => openSession(g(), note);

  /**
   * Follows the run's log live (SSE) until its end, writing each line as it arrives (`--json` on
   * `logs`: one JSON object per line), then waits for the run's terminal status and returns the run.
   * Ctrl-C ends it with exit code 130.
   */
  async function followLive(
    c: RunwayClient,
    wsId: string,
    run: Run,
    out: { json: boolean; to: NodeJS.WritableStream },
  ): Promise<Run> {
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    // The reader went away (`runway logs x -f | head`): stop following.
    let outClosed = false;
    const onOutError = () => {
      outClosed = true;
      ac.abort();
    };
    out.to.on('error', onOutError);
    try {
      const end = await c.followRunLogs(wsId, run.id, {
        signal: ac.signal,
        onLine: (l) =>
          write(out.to, out.json ? JSON.stringify(l) + '\n' : l.text + (l.part ? '' : '\n'), ac.signal),
        onReconnect: ({ attempt, from }) =>
          process.stderr.write(
            `runway: log stream interrupted, resuming at line ${from} (retry ${attempt})\n`,
          ),
      });
      if (!end.sealed)
        process.stderr.write(`runway: the log of run #${run.number} was not sealed: lines may be missing\n`);
      // The seal comes just before the run's terminal event: wait for it.
      let now = await c.getRun(wsId, run.id);
      while (!isTerminal(now.status)) {
        await sleep(500, ac.signal);
        now = await c.getRun(wsId, run.id);
      }
      return now;
    } catch (err) {
      if (outClosed) throw new CliError('output closed', 141);
      if (ac.signal.aborted) throw new CliError('interrupted', 130);
      throw err;
    } finally {
      process.removeListener('SIGINT', onSigint);
      out.to.removeListener('error', onOutError);
    }
  }

  function finish(run: Run): void {
    if (g().json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
    if (run.status !== 'completed') throw runFailed(run);
  }

  program
    .command('launch')
    .description('deploy code and configuration, create or update the job, run it and follow its logs')
    .argument('<script>', 'entry point, relative to the workspace root')
    .option('-d, --detach', 'do not follow the logs: return once the run left pending')
    .option('--description <text>', 'job description')
    .action(async (entryPoint: string, opts: { detach?: boolean; description?: string }) => {
      const { ws, c, wsId } = await session();
      await syncForJob(c, wsId, ws, entryPoint, note);
      const job = await c.upsertJob(wsId, {
        name: entryPoint,
        entry_point: entryPoint,
        kind: 'batch',
        ...(opts.description !== undefined ? { description: opts.description } : {}),
      });
      say(`Job ${job.name} created or updated, version #${job.version}`);
      let run = await c.requestRun(wsId, job.id);
      say(`Run #${run.number} of ${job.name} created`);
      say(`Run status: ${run.status}`);
      let status = run.status;
      while (run.status === 'pending') {
        await sleep(1000);
        run = await c.getRun(wsId, run.id);
        if (run.status !== status) say(`Run status: ${run.status}`);
        status = run.status;
      }
      if (opts.detach) {
        if (g().json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
        if (isTerminal(run.status) && run.status !== 'completed') throw runFailed(run);
        return;
      }
      const last = await followLive(c, wsId, run, {
        json: false,
        to: g().json ? process.stderr : process.stdout,
      });
      if (last.status !== status) say(`Run status: ${last.status}`);
      finish(last);
    });

  program
    .command('job')
    .description('jobs (scripts): list | info <script> | create <script> | delete <script>')
    .argument('[args...]', 'operation and script')
    .option('--name <name>', 'job name (create; default: the entry point)')
    .option('--schedule <cron>', 'cron schedule (create)')
    .option('--tz <zone>', 'IANA time zone of the schedule (create; default: UTC)')
    .option('-y, --yes', 'delete without asking (asked only on a terminal)')
    .option('--interactive', 'an interactive job (create)')
    .option('--description <text>', 'job description (create)')
    .action(
      async (
        args: string[],
        opts: {
          name?: string;
          schedule?: string;
          tz?: string;
          interactive?: boolean;
          description?: string;
          yes?: boolean;
        },
      ) => {
        const { op, job: named } = parseArgs(args, ['list', 'info', 'create', 'delete'], 'info');
        const { ws, c, wsId } = await session();
        if (op === 'list') {
          if (named) throw new CliError(`unexpected argument ${named}: job list takes no script`, 2);
          const page = await c.listJobs(wsId);
          printOut(g(), page.items, () =>
            page.items.length ? table(page.items.map(jobRow)) : 'No jobs found in this workspace\n',
          );
        } else if (op === 'create') {
          const entry = requireJob(named, 'runway job create <script>');
          if (opts.tz !== undefined && opts.schedule === undefined)
            throw new CliError('--tz goes with --schedule', 2);
          if (opts.tz !== undefined) checkZone(opts.tz);
          requireLocalFile(ws, entry);
          const job = await c.upsertJob(wsId, {
            name: opts.name ?? entry,
            entry_point: entry,
            kind: opts.interactive ? 'interactive' : 'batch',
            ...(opts.description !== undefined ? { description: opts.description } : {}),
            ...(opts.schedule !== undefined
              ? { schedule: opts.schedule, timezone: opts.tz ?? DEFAULT_ZONE }
              : {}),
          });
          printOut(
            g(),
            job,
            () => `Job ${job.name} created or updated, version #${job.version}\n` + table([jobRow(job)]),
          );
        } else if (op === 'delete') {
          await deleteJob(c, wsId, requireJob(named, 'runway job delete <script>'), opts.yes ?? false);
        } else {
          const job = await c.getJob(wsId, requireJob(named, 'runway job info <script>'));
          printOut(g(), job, () => table([jobRow(job)]));
        }
      },
    );

  /**
   * `job delete <script>` and `job <script> delete` (one path: the same question, output and exit
   * codes). On a terminal it asks first unless --yes (or --json); no answer but y/yes keeps the
   * job (exit 1). The job must exist (exit 1, `script x not found (HTTP 404)`).
   */
  async function deleteJob(c: RunwayClient, wsId: string, named: string, yes: boolean): Promise<void> {
    const job = await c.getJob(wsId, named);
    if (!yes && !g().json && process.stdin.isTTY && process.stderr.isTTY) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl
        .question(
          `Delete job ${job.name}${job.schedule ? ` (schedule "${job.schedule}" stops)` : ''}? Its runs and versions are kept. [y/N] `,
        )
        .finally(() => rl.close());
      if (!/^y(es)?$/i.test(answer.trim()))
        throw new CliError(`job ${job.name} not deleted`, 1, 'not_confirmed');
    }
    const gone = await c.deleteJob(wsId, job.name);
    printOut(g(), gone, () => `Job ${gone.name} deleted (its runs and versions are kept)\n`);
  }

  program
    .command('job-run')
    .description(
      'runs: list [<script>] | info <script> [N] | create <script> | cancel <script> [N] | <script> [N] logs [-f]',
    )
    .argument('[args...]', 'operation, script and run number')
    .option('-f, --follow', 'logs: follow the log live until the run ends')
    .action(async (args: string[], opts: { follow?: boolean }) => {
      const { op, job: named, n } = parseArgs(args, ['list', 'info', 'create', 'cancel', 'logs'], 'info');
      if (op === 'logs')
        return logs(requireJob(named, 'runway job-run <script> [N] logs [-f]'), n, opts.follow ?? false);
      if (opts.follow) throw new CliError('-f only goes with logs', 2);
      const { c, wsId } = await session();
      if (op === 'list') {
        // By name: a deleted job's runs too.
        const page = await c.listRuns(wsId, named ? { job: named } : {});
        printOut(g(), page.items, () =>
          page.items.length
            ? table(page.items.map(runRow))
            : `No runs found${named ? ` for ${named}` : ''}\n`,
        );
      } else if (op === 'create') {
        const job = await c.getJob(wsId, requireJob(named, 'runway job-run create <script>'));
        const run = await c.requestRun(wsId, job.id);
        printOut(g(), run, () => `Run #${run.number} of ${job.name} created\n` + table([runRow(run)]));
      } else if (op === 'cancel') {
        await cancel(c, wsId, requireJob(named, 'runway job-run cancel <script> [N]'), n);
      } else {
        const job = await jobOfRuns(c, wsId, requireJob(named, 'runway job-run info <script> [N]'));
        const run = await c.getRun(wsId, (await findRun(c, wsId, job, n)).id);
        printOut(g(), run, () => {
          const timeline = (run.status_timeline ?? []).map((t) => ({
            status: t.status,
            at: t.at,
            reason: t.reason,
          }));
          const tail = run.stderr_tail?.length
            ? `\nstderr (last lines):\n${run.stderr_tail.join('\n')}\n`
            : '';
          return table([runRow(run)]) + (timeline.length ? '\n' + table(timeline) : '') + tail;
        });
      }
    });

  async function cancel(c: RunwayClient, wsId: string, named: string, n?: number): Promise<void> {
    const job = await c.getJob(wsId, named);
    const run = await findRun(c, wsId, job, n);
    let res: Run;
    try {
      res = await c.cancelRun(wsId, run.id);
    } catch (err) {
      if (err instanceof ClientError && err.status === 400)
        throw new CliError(`cannot cancel run #${run.number} of ${job.name}: ${err.detail}`);
      throw err;
    }
    printOut(
      g(),
      res,
      () => `Requested cancellation of run #${res.number} of ${job.name} (status: ${res.status})\n`,
    );
  }

  program
    .command('cancel')
    .description('cancel run N of a script (default: the latest)')
    .argument('<script>')
    .argument('[N]', 'run number')
    .action(async (named: string, n?: string) => {
      if (n !== undefined && !/^\d+$/.test(n)) throw new CliError(`invalid run number ${n}`, 2);
      const { c, wsId } = await session();
      await cancel(c, wsId, named, n ? Number(n) : undefined);
    });

  /**
   * `logs <script> [N] [-f]`: the complete log of run N (default: the latest). With -f the log is
   * followed live until the run ends; exit 0 if it completed, 1 (with a one-line reason) if not.
   */
  async function logs(named: string, n: number | undefined, follow: boolean): Promise<void> {
    const { c, wsId } = await session();
    const job = await jobOfRuns(c, wsId, named);
    const run = await findRun(c, wsId, job, n);
    if (follow) {
      note(`Logs of run #${run.number} of ${job.name} (status: ${run.status})`);
      const last = await followLive(c, wsId, run, { json: g().json ?? false, to: process.stdout });
      note(`Run status: ${last.status}`);
      if (last.status !== 'completed') throw runFailed(last);
      return;
    }
    const { run: now, logs } = await c.runLogs(wsId, run.id);
    printOut(g(), { run: now, logs }, () => (logs === null ? '' : logs + '\n'));
    note(`Run #${now.number} of ${job.name}: ${now.status}`);
  }

  program
    .command('logs')
    .description(
      'the output of run N of a script (default: the latest); -f follows it live until the run ends',
    )
    .argument('<script>')
    .argument('[N]', 'run number')
    .option(
      '-f, --follow',
      'follow the log live; exit 0 if the run completed, 1 if it failed or was cancelled',
    )
    .action(async (named: string, n: string | undefined, opts: { follow?: boolean }) => {
      if (n !== undefined && !/^\d+$/.test(n)) throw new CliError(`invalid run number ${n}`, 2);
      await logs(named, n && Number(n) !== 0 ? Number(n) : undefined, opts.follow ?? false);
    });
}
