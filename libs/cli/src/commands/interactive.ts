import type { Command } from 'commander';
import { sleep, TERMINAL_RUN_STATUSES, type Run } from '#libs/client';
import { CliError } from '../instance.js';
import { openSession, type GlobalOptions } from '../session.js';
import { syncForJob } from './sync.js';

/** Why an interactive run did not reach `running`, in one line. */
function notServing(r: Run, name: string): string {
  const why = [r.failure_reason, r.message].filter((x) => x).join(': ');
  return `run #${r.number} of ${name} ${r.status}${why ? ` (${why})` : ''}: see \`runway logs ${name} ${r.number}\``;
}

/** `runway serve` and `runway publish`: interactive jobs (docs/interactive.md). */
export function registerInteractive(program: Command, g: () => GlobalOptions): void {
  const note = (m: string) => {
    if (!g().json) process.stderr.write(`${m}\n`);
  };
  const out = (text: string, json: unknown) =>
    process.stdout.write(g().json ? JSON.stringify(json, null, 2) + '\n' : `${text}\n`);

  program
    .command('serve')
    .description(
      'deploy code and configuration, create or update the interactive job (a marimo notebook or a Python app serving on $PORT), run it and print its URL once it answers',
    )
    .argument('<file>', 'notebook or app, relative to the workspace root')
    .option('--description <text>', 'job description')
    .option('--timeout <seconds>', 'how long to wait for the app to answer', '300')
    .action(async (file: string, opts: { description?: string; timeout: string }) => {
      const wait = Number(opts.timeout);
      if (!Number.isInteger(wait) || wait < 1)
        throw new CliError(`--timeout must be a whole number of seconds`, 2);
      const { ws, c, wsId } = await openSession(g(), note);
      await syncForJob(c, wsId, ws, file, note);
      const job = await c.upsertJob(wsId, {
        name: file,
        entry_point: file,
        kind: 'interactive',
        ...(opts.description !== undefined ? { description: opts.description } : {}),
      });
      note(`Job ${job.name} created or updated, version #${job.version}`);
      let run = await c.requestRun(wsId, job.id);
      note(`Run #${run.number} of ${job.name}: ${run.status}`);
      const deadline = Date.now() + wait * 1000;
      let status = run.status;
      while (run.status !== 'running') {
        if (TERMINAL_RUN_STATUSES.includes(run.status) || run.status === 'cancelling')
          throw new CliError(notServing(run, job.name), 1, `run_${run.status}`);
        if (Date.now() > deadline)
          throw new CliError(
            `the app of ${job.name} did not answer within ${wait} s (run #${run.number} is ${run.status})`,
            1,
            'timeout',
          );
        await sleep(500);
        run = await c.getRun(wsId, run.id);
        if (run.status !== status) note(`Run status: ${run.status}`);
        status = run.status;
      }
      out(job.url, { job: job.name, job_id: job.id, run: run.number, run_id: run.id, url: job.url });
    });

  program
    .command('publish')
    .description(
      "make a public link to an interactive job's app (opens it logged out; the URL is shown only now), or rotate or revoke it",
    )
    .argument('<job>', 'job name or id')
    .option('--rotate', 'a new link; the old one stops working at once')
    .option('--revoke', 'no link any more; open pages through it are closed at once')
    .action(async (job: string, opts: { rotate?: boolean; revoke?: boolean }) => {
      if (opts.rotate && opts.revoke) throw new CliError('give --rotate or --revoke, not both', 2);
      const action = opts.revoke ? 'revoke' : opts.rotate ? 'rotate' : 'enable';
      const { c, wsId } = await openSession(g(), note);
      const r = await c.changePublicLink(wsId, job, action);
      if (action === 'revoke') out(`The public link of ${r.job_name} is revoked.`, r);
      else out(r.public_url ?? '', r);
      if (action !== 'revoke' && !g().json)
        note('Anyone with this link can open the app without signing in. It is shown only this once.');
    });
}
