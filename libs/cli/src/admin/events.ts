import type { Command } from 'commander';
import { CliError, findInstance, withNats } from '../instance.js';

export function parseFrom(from: string | undefined): { fromSeq?: number; fromTime?: Date } {
  if (from === undefined) return { fromSeq: 1 };
  if (/^\d+$/.test(from)) {
    const n = Number(from);
    if (n < 1) throw new CliError('--from must be a sequence ≥ 1 or an ISO time', 2);
    return { fromSeq: n };
  }
  const t = Date.parse(from);
  if (Number.isNaN(t) || !/^\d{4}-\d{2}-\d{2}/.test(from)) {
    throw new CliError(
      `--from ${from}: expected a stream sequence (e.g. 42) or an ISO time (e.g. 2026-01-31T12:00:00Z)`,
      2,
    );
  }
  return { fromTime: new Date(t) };
}

export function registerEvents(admin: Command): void {
  const events = admin.command('events').description('read the event log');
  events
    .command('tail')
    .description('print the event log as JSON lines (one line per event)')
    .option('--from <seq|time>', 'start at a stream sequence or an ISO time (default: the beginning)')
    .option('--aggregate <type>', 'only events of this aggregate type (e.g. workspace, user)')
    .option('--workspace <id>', 'only events of this workspace')
    .option('--type <eventType>', 'only events of this type (e.g. WorkspaceCreated)')
    .option('-f, --follow', 'keep printing new events until interrupted')
    .action(
      async (opts: {
        from?: string;
        aggregate?: string;
        workspace?: string;
        type?: string;
        follow?: boolean;
      }) => {
        const from = parseFrom(opts.from);
        if (opts.aggregate && !/^[a-z][a-z0-9_-]*$/.test(opts.aggregate))
          throw new CliError(`--aggregate ${opts.aggregate}: not an aggregate type`, 2);
        if (opts.workspace && !/^[A-Za-z0-9_-]+$/.test(opts.workspace))
          throw new CliError(`--workspace ${opts.workspace}: not a workspace id`, 2);
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        await withNats(findInstance(), async (_nc, store) => {
          for await (const c of store.replay({
            ...from,
            aggregateType: opts.aggregate,
            workspaceId: opts.workspace,
            follow: opts.follow ?? false,
            raw: true,
            signal: ac.signal,
          })) {
            for (const e of c.events) {
              if (opts.type && e.type !== opts.type) continue;
              process.stdout.write(
                JSON.stringify({
                  seq: c.seq,
                  index: e.index,
                  type: e.type,
                  version: e.version,
                  aggregate: c.aggregate,
                  time: c.meta.time,
                  actor: c.meta.actor,
                  commandId: c.meta.commandId,
                  correlationId: c.meta.correlationId,
                  causationId: c.meta.causationId,
                  data: e.data,
                }) + '\n',
              );
            }
          }
        });
      },
    );
}
