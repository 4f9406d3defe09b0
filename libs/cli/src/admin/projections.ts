import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { Subjects } from '#libs/contracts';
import { projectionStatus, type CheckpointTable } from '#libs/projections';
import { CliError, findInstance, withDb, withNats } from '../instance.js';
import { table } from '../output.js';

export function registerProjections(admin: Command, json: () => boolean): void {
  const projections = admin.command('projections').description('read models built from the event log');
  projections
    .command('status')
    .description('name, checkpoint and lag of every projection')
    .action(async () => {
      const instance = findInstance();
      const rows = await withDb(instance, async (db) => {
        const names = await (db as Kysely<CheckpointTable>)
          .selectFrom('projection_checkpoints')
          .select('name')
          .orderBy('name')
          .execute();
        return withNats(instance, (_nc, store) =>
          projectionStatus(
            store,
            db as Kysely<CheckpointTable>,
            names.map((n) => n.name),
          ),
        );
      });
      if (json()) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else
        process.stdout.write(
          table(
            rows.map((r) => ({
              name: r.name,
              checkpoint: r.checkpoint,
              stream_last_seq: r.streamLastSeq,
              lag: r.lag,
            })),
          ),
        );
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
