import { Command, CommanderError } from 'commander';
import { ConfigError } from '#libs/config';
import { registerEvents } from './admin/events.js';
import { registerProjections } from './admin/projections.js';
import { registerAccess } from './admin/access.js';
import { registerBackup } from './admin/backup.js';
import { registerAccount } from './commands/account.js';
import { registerSync } from './commands/sync.js';
import { registerJobs } from './commands/jobs.js';
import { registerSchedule } from './commands/schedule.js';
import { registerWorkspace } from './commands/workspace.js';
import { registerAlerts } from './commands/alerts.js';
import { ClientError } from '#libs/client';
import type { GlobalOptions } from './session.js';
import { CliError } from './instance.js';

export function buildProgram(): Command {
  const program = new Command('runway')
    .description('Runway: run dlt pipelines and marimo notebooks on your own infrastructure')
    .showHelpAfterError(false)
    .option('--json', 'machine-readable output')
    .option(
      '--api-url <url>',
      'API base URL (default: RUNTIME__API_BASE_URL, [runtime] api_base_url, http://127.0.0.1:8080/api)',
    )
    .option('--token <token>', 'API token or JWT (default: the saved login)')
    .exitOverride();
  const g = () => program.opts<GlobalOptions>();
  registerAccount(program, g);
  registerSync(program, g);
  registerJobs(program, g);
  registerSchedule(program, g);
  registerWorkspace(program, g);
  registerAlerts(program, g);
  const admin = program.command('admin').description('operator commands for the local instance');
  registerEvents(admin);
  registerProjections(admin, () => g().json ?? false);
  registerAccess(admin, () => g().json ?? false);
  registerBackup(admin);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof ClientError) {
      process.stderr.write(`runway: ${err.message}\n`);
      return err.status === 0 ? 3 : 1;
    }
    if (err instanceof CliError) {
      process.stderr.write(`runway: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`runway: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`runway: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
