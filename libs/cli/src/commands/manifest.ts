import type { Command } from 'commander';
import { z } from 'zod';
import { ClientError } from '#libs/client';
import { CliError } from '../instance.js';
import { openSession, type GlobalOptions } from '../session.js';
import { printOut } from './print.js';

/** The answer of `POST …/scripts/{job_ref}/backfill` (docs/manifest.md). */
const backfillAnswer = z.object({
  runs: z.array(
    z.object({
      run_id: z.string(),
      number: z.number().int(),
      interval_start: z.string(),
      interval_end: z.string(),
    }),
  ),
});

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
 * `runway jobs backfill <job_ref> --from <ISO> --to <ISO>`: one run per interval of the manifest
 * job's time trigger in [from, to). Exit 0 done, 1 refused by the server (the reason printed), 2 usage.
 */
export function registerManifest(program: Command, g: () => GlobalOptions): void {
  const jobs = program.command('jobs').description('jobs deployed from a manifest (docs/manifest.md)');
  jobs
    .command('backfill')
    .description("one run per interval of the job's schedule:/every: trigger in [from, to)")
    .argument('<job_ref>', 'the job (jobs.<section>.<name>)')
    .requiredOption('--from <time>', 'start of the range (ISO 8601, inclusive)')
    .requiredOption('--to <time>', 'end of the range (ISO 8601, exclusive)')
    .action(async (ref: string, opts: { from: string; to: string }) => {
      const from = isoTime('--from', opts.from);
      const to = isoTime('--to', opts.to);
      if (Date.parse(to) <= Date.parse(from)) throw new CliError(`--to must be after --from`, 2);
      const { c, wsId } = await openSession(g());
      let raw: unknown;
      try {
        raw = await c.api<unknown>(
          'POST',
          `/v1/workspaces/${wsId}/scripts/${encodeURIComponent(ref)}/backfill`,
          { from, to },
        );
      } catch (err) {
        if (err instanceof ClientError && err.status >= 400 && err.status < 500)
          throw new CliError(`cannot backfill ${ref}: ${err.detail}`, 1);
        throw err;
      }
      const r = backfillAnswer.parse(raw);
      printOut(g(), r, () =>
        [
          `Backfill of ${ref}: ${r.runs.length} run(s)`,
          ...r.runs.map((x) => `  run #${x.number}  [${x.interval_start}, ${x.interval_end})`),
          '',
        ].join('\n'),
      );
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
