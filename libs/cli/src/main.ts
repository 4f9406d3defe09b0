import { Command } from 'commander';
import { registerEvents } from './admin/events.js';
import { registerProjections } from './admin/projections.js';
import { registerAccess } from './admin/access.js';
import { registerBackup } from './admin/backup.js';
import { registerAccount } from './commands/account.js';
import { registerSync } from './commands/sync.js';
import { registerJobs } from './commands/jobs.js';
import { registerSchedule } from './commands/schedule.js';
import { registerWorkspace } from './commands/workspace.js';
import { registerEventsCommand } from './commands/events.js';
import { registerAlerts } from './commands/alerts.js';
import { registerInteractive } from './commands/interactive.js';
import { registerManifest } from './commands/manifest.js';
import type { GlobalOptions } from './session.js';
import { commanderOutput, reportError, wantsJson } from './errors.js';

export function buildProgram(json = false): Command {
  const program = new Command('runway')
    .configureOutput(commanderOutput(() => json))
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
  registerEventsCommand(program, () => g().json ?? false);
  registerAlerts(program, g);
  registerInteractive(program, g);
  registerManifest(program, g);
  const admin = program.command('admin').description('operator commands for the local instance');
  registerEvents(admin);
  registerProjections(admin, () => g().json ?? false);
  registerAccess(admin, () => g().json ?? false);
  registerBackup(admin);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const json = wantsJson(argv);
  const program = buildProgram(json);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, json);
  }
}
