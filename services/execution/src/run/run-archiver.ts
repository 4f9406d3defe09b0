import type { Kysely } from 'kysely';
import { AggregateTypes } from '#libs/contracts';
import { EventArchive, type AggregateRef, type EventStore } from '#libs/eventstore';
import type { ExecutionTables } from '../migrations/index.js';
import {
  archiveCursor,
  endedRunsAfter,
  saveArchiveCursor,
  tryArchiveLock,
  type ArchivePosition,
} from './read-models/run-archive.queries.js';

const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export interface RunArchivePass {
  /** Runs whose subjects (`run`, `runlog`) were looked at in this pass. */
  runs: number;
  /** Subjects that left the event stream. */
  subjects: number;
  /** Commits copied to the archive. */
  commits: number;
  /** Runs that ended before this are archived (the cursor after the pass). */
  archivedBefore: Date;
}

/**
 * Moves the subjects of runs that ended long ago out of the event stream (docs/scale.md): every
 * run makes two subjects there (its `run` aggregate and its `runlog`), each of which costs the
 * nats-server memory on every replica as long as it holds a message. A run in a terminal state
 * takes no command any more (a cancel of it is refused before reading it), so its commits can live
 * in the archive stream, from where every replay (projection rebuilds, admin replay) still reads
 * them at their sequences.
 *
 * Which runs: terminal in the `runs` read model and last changed before `now - afterMs`, taken in
 * the order they ended; a cursor (`run_archive_cursor`, not a read model: the archiver's own
 * progress) keeps the point reached, so each pass looks only at runs that ended since the last
 * one. Passes are safe to repeat (an archived subject is empty) and to run from several
 * processes at once; one holds a transaction-scoped advisory lock so that they do not both work.
 */
export class RunArchiver {
  private readonly archive: EventArchive;

  constructor(
    private readonly store: EventStore,
    private readonly db: Kysely<ExecutionTables>,
    private readonly opts: { afterMs: number; batchSize?: number },
  ) {
    this.archive = new EventArchive(store);
  }

  /** One pass: every run that ended before `now - afterMs` and after the cursor. Null when another process holds the pass. */
  async archiveOnce(now = new Date()): Promise<RunArchivePass | null> {
    const cutoff = new Date(now.getTime() - this.opts.afterMs);
    const batchSize = this.opts.batchSize ?? 1000;
    return this.db.transaction().execute(async (tx) => {
      if (!(await tryArchiveLock(tx))) return null;
      const cursor = await archiveCursor(tx);
      let after: ArchivePosition = {
        at: cursor?.archived_before ?? new Date(0),
        id: cursor?.last_run_id ?? NIL_UUID,
      };
      const pass: RunArchivePass = { runs: 0, subjects: 0, commits: 0, archivedBefore: after.at };
      for (;;) {
        const rows = await endedRunsAfter(tx, cutoff, after, batchSize);
        if (rows.length === 0) break;
        const refs: AggregateRef[] = rows.flatMap((r) => [
          { workspaceId: r.workspace_id, type: AggregateTypes.run, id: r.id },
          { workspaceId: r.workspace_id, type: AggregateTypes.runlog, id: r.id },
        ]);
        const res = await this.archive.archive(refs);
        pass.runs += rows.length;
        pass.subjects += res.aggregates;
        pass.commits += res.commits;
        const last = rows[rows.length - 1]!;
        after = { at: last.updated_at, id: last.id };
        await saveArchiveCursor(tx, after);
        if (rows.length < batchSize) break;
      }
      pass.archivedBefore = after.at;
      return pass;
    });
  }
}
