import type { Kysely } from 'kysely';
import type { AggregateRef, DomainEvent, StoredCommit } from '#libs/eventstore';
import { applyBatch, type RunnableProjection } from '#libs/projections';
import { untypedDb } from './environment.js';

/**
 * Given/then for projections against a real database: each `given` entry becomes one commit with
 * the next stream sequence, applied through the same transaction path as the live runner.
 */
export function projectionSpec<DB>(db: Kysely<DB>, projection: RunnableProjection) {
  let seq = 0;
  return {
    async given(
      ...entries: { aggregate: AggregateRef; events: DomainEvent[]; actor?: string; time?: string }[]
    ) {
      const commits: StoredCommit[] = entries.map((entry) => {
        seq += 1;
        const time = entry.time ?? new Date().toISOString();
        const meta = {
          commandId: `cmd-${seq}`,
          actor: entry.actor ?? 'test',
          correlationId: `cmd-${seq}`,
          time,
        };
        return {
          seq,
          subject: `evt.${entry.aggregate.workspaceId}.${entry.aggregate.type}.${entry.aggregate.id}`,
          aggregate: entry.aggregate,
          meta,
          events: entry.events.map((e, index) => ({
            ...e,
            seq,
            index,
            aggregate: entry.aggregate,
            time,
            actor: meta.actor,
            commandId: meta.commandId,
            correlationId: meta.correlationId,
          })),
        };
      });
      await applyBatch(untypedDb(db), projection, commits);
    },
  };
}
