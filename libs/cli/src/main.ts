import { Command, CommanderError } from 'commander';
import { ConfigError } from '#libs/config';
import { registerEvents } from './admin/events.js';
import { registerProjections } from './admin/projections.js';
import { CliError } from './instance.js';

export function buildProgram(): Command {
  const program = new Command('runway')
    .description('Runway: run dlt pipelines and marimo notebooks on your own infrastructure')
    .showHelpAfterError(false)
    .exitOverride();
  const admin = program.command('admin').description('operator commands for the local instance');
  registerEvents(admin);
  registerProjections(admin);
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
