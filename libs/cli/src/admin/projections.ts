import type { Command } from 'commander';
import { withTables } from '#libs/database';
import { Subjects } from '#libs/contracts';
import {
  deadLetterSummary,
  listDeadLetters,
  projectionStatus,
  type CheckpointTable,
  type DeadLetter,
} from '#libs/projections';
import { CliError, findInstance, withDb, withNats } from '../instance.js';
import { table } from '../output.js';

export function registerProjections(admin: Command, json: () => boolean): void {
  const projections = admin.command('projections').description('read models built from the event log');
  projections
    .command('status')
    .description('name, checkpoint, lag and dead letters of every projection, and the latest errors')
    .action(async () => {
      const instance = findInstance();
      const rows = await withDb(instance, async (anyDb) => {
        const db = withTables<CheckpointTable>(anyDb);
        const names = await db
          .selectFrom('projection_checkpoints')
          .select('name')
          .union(db.selectFrom('projection_dead_letters').select('projection as name'))
          .orderBy('name')
          .execute();
        const status = await withNats(instance, (_nc, store) =>
          projectionStatus(
            store,
            db,
            names.map((n) => n.name),
          ),
        );
        const dead = await deadLetterSummary(
          db,
          status.map((s) => s.name),
        );
        return status.map((s) => {
          const d = dead.get(s.name);
          return { ...s, deadLetters: d?.count ?? 0, halted: d?.halted ?? 0, latestErrors: d?.latest ?? [] };
        });
      });
      if (json()) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        table(
          rows.map((r) => ({
            name: r.name,
            checkpoint: r.checkpoint,
            stream_last_seq: r.streamLastSeq,
            lag: r.lag,
            dead_letters: r.deadLetters,
            state: r.halted > 0 ? 'HALTED' : 'ok',
          })),
        ),
      );
      const errors = rows.flatMap((r) => r.latestErrors);
      if (errors.length > 0) {
        process.stdout.write('\nlatest errors (all: runway admin projections dead-letters [name]):\n');
        process.stdout.write(table(errors.map(deadLetterRow)));
      }
    });
  projections
    .command('dead-letters [name]')
    .description('commits a projection could not decode or apply (newest first), of one projection or all')
    .option('--limit <n>', 'most rows', '100')
    .action(async (name: string | undefined, opts: { limit: string }) => {
      if (name !== undefined && !/^[a-z][a-z0-9_]*$/.test(name))
        throw new CliError(`${name}: not a projection name`, 2);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new CliError(`--limit ${opts.limit}: not a positive integer`, 2);
      const instance = findInstance();
      const letters = await withDb(instance, (db) =>
        listDeadLetters(withTables<CheckpointTable>(db), { ...(name ? { projection: name } : {}), limit }),
      );
      if (json()) process.stdout.write(JSON.stringify(letters, null, 2) + '\n');
      else process.stdout.write(table(letters.map(deadLetterRow)));
    });
  projections
    .command('rebuild <name>')
    .description('replay the whole log into fresh tables, then swap them in (the owning service does it)')
    .action(async (name: string) => {
      if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new CliError(`${name}: not a projection name`, 2);
      const instance = findInstance();
      const prefix = instance.config.events.subjectPrefix;
      const subject = (prefix ? `${prefix}.` : '') + Subjects.projectionRebuild(name);
      await withNats(instance, async (nc) => {
        let reply;
        try {
          reply = await nc.request(subject, '', { timeout: 30 * 60_000 });
        } catch (err) {
          if (
            err instanceof Error &&
            /no responders|503/i.test(err.message + String((err as { code?: unknown }).code))
          ) {
            throw new CliError(
              `no running service owns a projection named ${name} (is Runway running? see: runway admin projections status)`,
            );
          }
          throw err;
        }
        const res = reply.json() as {
          ok: boolean;
          error?: string;
          events?: number;
          checkpoint?: number;
          ms?: number;
        };
        if (!res.ok) throw new CliError(`rebuild of ${name} failed: ${res.error ?? 'unknown error'}`);
        process.stdout.write(
          `rebuilt ${name}: ${res.events} events applied, checkpoint ${res.checkpoint}, ${res.ms} ms\n`,
        );
      });
    });
}

function deadLetterRow(l: DeadLetter): Record<string, unknown> {
  return {
    projection: l.projection,
    seq: l.seq,
    failed_at: l.failedAt.toISOString(),
    action: l.halted ? 'halted' : 'passed over',
    subject: l.subject,
    types: l.eventTypes ?? '',
    error: l.error.length > 160 ? `${l.error.slice(0, 160)}…` : l.error,
  };
}
