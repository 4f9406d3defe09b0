import type { Command } from 'commander';
import { z } from 'zod';
import { ClientError } from '#libs/client';
import { CliError } from '../instance.js';
import { openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';

/** A backfill as the API answers it (`POST …/scripts/{job_ref}/backfill`, `GET …/backfills/{id}`; docs/manifest.md). */
const backfillAnswer = z.object({
  backfill_id: z.string(),
  job_ref: z.string().nullable(),
  mode: z.enum(['sequential', 'parallel']),
  concurrency: z.number().int(),
  status: z.enum(['running', 'completed', 'failed', 'cancelled']),
  reason: z.string().nullable(),
  skipped_done: z.number().int(),
  progress: z.object({
    total: z.number().int(),
    pending: z.number().int(),
    requested: z.number().int(),
    completed: z.number().int(),
    failed: z.number().int(),
    cancelled: z.number().int(),
  }),
  slices: z.array(
    z.object({
      index: z.number().int(),
      interval_start: z.string(),
      interval_end: z.string(),
      status: z.string(),
      run_id: z.string().nullable(),
    }),
  ),
});
type BackfillAnswer = z.infer<typeof backfillAnswer>;

const progressLine = (r: BackfillAnswer): string =>
  `${r.status}: ${r.progress.completed}/${r.progress.total} completed, ${r.progress.requested} running, ${r.progress.failed} failed, ${r.progress.pending} pending${r.progress.cancelled ? `, ${r.progress.cancelled} cancelled` : ''}${r.reason ? ` (${r.reason})` : ''}`;

const backfillText = (ref: string, r: BackfillAnswer): string =>
  [
    `Backfill of ${ref}: ${r.progress.total} run(s) (backfill ${r.backfill_id}, ${r.mode}, at most ${r.concurrency} at a time${r.skipped_done ? `; ${r.skipped_done} interval(s) already done left out` : ''})`,
    ...r.slices.map(
      (x) =>
        `  slice ${x.index + 1}  [${x.interval_start}, ${x.interval_end})  ${x.status}${x.run_id ? `  run ${x.run_id}` : ''}`,
    ),
    progressLine(r),
    '',
  ].join('\n');

/** The answer of `POST …/scripts/{job_ref}/webhook` (docs/manifest.md). */
const webhookAnswer = z.object({
  job_id: z.string(),
  job_ref: z.string(),
  enabled: z.boolean(),
  webhook_url: z.string().nullable(),
});

const isoTime = (what: string, text: string): string => {
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ||
    !Number.isFinite(Date.parse(text))
  )
    throw new CliError(
      `${what} ${JSON.stringify(text)} is not an ISO 8601 time with a zone (2026-03-01T00:00:00Z)`,
      2,
    );
  return new Date(text).toISOString();
};

/**
 * `runway jobs backfill <job_ref> --from <ISO> --to <ISO> [--reprocess] [--wait]`: a backfill of the
 * manifest job's intervals in [from, to), paced by its `interval.mode`; `--wait` follows it to its
 * end. `backfill-status|backfill-cancel|backfill-resume <id>`. Exit 0 done, 1 refused by the server
 * (the reason printed) or a backfill that failed / was cancelled (with --wait), 2 usage.
 */
export function registerManifest(program: Command, g: () => GlobalOptions): void {
  const jobs = program.command('jobs').description('jobs deployed from a manifest (docs/manifest.md)');
  const call = async (what: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
    const { c, wsId } = await openSession(g());
    try {
      return backfillAnswer.parse(await c.api<unknown>(method, `/v1/workspaces/${wsId}${path}`, body));
    } catch (err) {
      if (err instanceof ClientError && err.status >= 400 && err.status < 500)
        throw new CliError(`cannot ${what}: ${err.detail}`, 1);
      throw err;
    }
  };
  const follow = async (ref: string, first: BackfillAnswer, intervalMs: number): Promise<void> => {
    let r = first;
    let last = progressLine(r);
    if (!g().json) process.stdout.write(`${last}\n`);
    while (r.status === 'running') {
      await new Promise((res) => setTimeout(res, intervalMs));
      r = await call(`follow backfill ${r.backfill_id}`, 'GET', `/backfills/${r.backfill_id}`);
      const line = progressLine(r);
      if (line !== last && !g().json) process.stdout.write(`${line}\n`);
      last = line;
    }
    printOut(g(), r, () => backfillText(ref, r));
    if (r.status !== 'completed') throw new CliError(`backfill ${r.backfill_id} ${r.status}`, 1);
  };
  jobs
    .command('backfill')
    .description(
      "a backfill of the job's schedule:/every: intervals in [from, to), paced by its interval.mode",
    )
    .argument('<job_ref>', 'the job (jobs.<section>.<name>)')
    .requiredOption('--from <time>', 'start of the range (ISO 8601, inclusive)')
    .requiredOption('--to <time>', 'end of the range (ISO 8601, exclusive)')
    .option('--reprocess', 'also the intervals a run of the job already completed')
    .option('--wait', 'follow the backfill until it ends (exit 1 when it fails or is cancelled)')
    .action(async (ref: string, opts: { from: string; to: string; reprocess?: boolean; wait?: boolean }) => {
      const from = isoTime('--from', opts.from);
      const to = isoTime('--to', opts.to);
      if (Date.parse(to) <= Date.parse(from)) throw new CliError(`--to must be after --from`, 2);
      const r = await call(`backfill ${ref}`, 'POST', `/scripts/${encodeURIComponent(ref)}/backfill`, {
        from,
        to,
        ...(opts.reprocess ? { reprocess: true } : {}),
      });
      if (!opts.wait) {
        printOut(g(), r, () => backfillText(ref, r));
        return;
      }
      if (!g().json) process.stdout.write(backfillText(ref, r));
      await follow(ref, r, 1000);
    });
  jobs
    .command('backfill-status')
    .description('a backfill: its slices, their runs and its progress')
    .argument('<backfill_id>', 'the id `runway jobs backfill` printed')
    .option('--wait', 'follow it until it ends')
    .action(async (id: string, opts: { wait?: boolean }) => {
      const r = await call(`show backfill ${id}`, 'GET', `/backfills/${encodeURIComponent(id)}`);
      if (opts.wait) await follow(r.job_ref ?? '', r, 1000);
      else printOut(g(), r, () => backfillText(r.job_ref ?? '', r));
    });
  for (const action of ['cancel', 'resume'] as const)
    jobs
      .command(`backfill-${action}`)
      .description(
        action === 'cancel'
          ? 'cancel a backfill: pending slices are never requested, running ones are cancelled'
          : 'resume a failed backfill: failed slices are retried, the rest paced as before',
      )
      .argument('<backfill_id>', 'the id `runway jobs backfill` printed')
      .action(async (id: string) => {
        const r = await call(
          `${action} backfill ${id}`,
          'POST',
          `/backfills/${encodeURIComponent(id)}/${action}`,
        );
        printOut(g(), r, () => backfillText(r.job_ref ?? '', r));
      });

  jobs
    .command('webhook')
    .description(
      "the job's webhook (a manifest job with a webhook: trigger): POST to the URL starts a run; the URL is shown only now",
    )
    .argument('<job_ref>', 'the job (jobs.<section>.<name>)')
    .option('--rotate', 'a new URL; the old one stops working at once')
    .option('--revoke', 'no webhook any more')
    .action(async (ref: string, opts: { rotate?: boolean; revoke?: boolean }) => {
      if (opts.rotate && opts.revoke) throw new CliError('give --rotate or --revoke, not both', 2);
      const action = opts.revoke ? 'revoke' : opts.rotate ? 'rotate' : 'enable';
      const { c, wsId } = await openSession(g());
      let raw: unknown;
      try {
        raw = await c.api<unknown>(
          'POST',
          `/v1/workspaces/${wsId}/scripts/${encodeURIComponent(ref)}/webhook`,
          {
            action,
          },
        );
      } catch (err) {
        if (err instanceof ClientError && err.status >= 400 && err.status < 500)
          throw new CliError(`cannot ${action} the webhook of ${ref}: ${err.detail}`, 1);
        throw err;
      }
      const r = webhookAnswer.parse(raw);
      printOut(g(), r, () =>
        action === 'revoke'
          ? `The webhook of ${r.job_ref} is revoked.\n`
          : `${r.webhook_url ?? ''}\nPOST to this URL (optional JSON body) starts a run of ${r.job_ref}. It is shown only this once.\n`,
      );
    });
}
