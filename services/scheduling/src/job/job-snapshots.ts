import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import { jobSpecSchema } from '#libs/contracts';
import type { AggregateRef, SnapshotStore, StateAt } from '#libs/eventstore';
import type { SchedulingTables } from '../migrations/index.js';
import type { JobState } from './job.decider.js';
import { backfillModeSchema } from './job.events.js';

/**
 * Format of the stored state: bump it whenever JobState or the decider's evolve changes meaning,
 * and stored snapshots are ignored (the jobs are read from their streams, then snapshotted again).
 */
export const JOB_SNAPSHOT_FORMAT = 3;

const jobStateSchema = z.object({
  exists: z.boolean(),
  jobId: z.string(),
  version: z.number().int().min(0),
  versionId: z.string(),
  spec: jobSpecSchema.optional(),
  lastRunNumber: z.number().int().min(0),
  lastFireAt: z.string().nullable(),
  activeRuns: z.array(z.string()),
  queuedFireAt: z.string().nullable(),
  publicLinkHash: z.string().nullable(),
  webhookHash: z.string().nullable().optional(),
  lastIntervalEnd: z.string().nullable().optional(),
  runIntervals: z
    .record(
      z.string(),
      z.object({ start: z.string().nullable().optional(), end: z.string().nullable(), refresh: z.boolean() }),
    )
    .optional(),
  refreshPending: z.boolean().optional(),
  backfills: z
    .record(
      z.string(),
      z.object({
        from: z.string(),
        to: z.string(),
        mode: backfillModeSchema,
        concurrency: z.number().int().min(1),
        status: z.enum(['running', 'failed']),
        slices: z.array(
          z.object({
            start: z.string(),
            end: z.string(),
            status: z.enum(['pending', 'requested', 'completed', 'failed', 'cancelled']),
            runId: z.string().nullable(),
            attempts: z.number().int().min(0),
          }),
        ),
      }),
    )
    .optional(),
  doneIntervals: z.array(z.tuple([z.string(), z.string()])).optional(),
});

/** (spec is stored without the key when undefined; the assignment checks the schema against JobState.) */
const toState = (d: z.infer<typeof jobStateSchema>): JobState => ({ ...d, spec: d.spec });

export interface JobSnapshot {
  workspaceId: string;
  jobId: string;
  /** Stream sequence of the job's last commit folded into `state`. */
  lastSeq: number;
  state: JobState;
}

/**
 * The `job_snapshots` table: the only SQL of job snapshots. The job command handler loads a cold
 * job from its snapshot (SnapshotStore); the scheduler reads them in bulk at its start (prewarm)
 * and writes those of every job that moved every 30 s (writeSnapshots).
 */
export class JobSnapshots implements SnapshotStore<JobState> {
  constructor(private readonly db: Kysely<SchedulingTables>) {}

  async load(ref: AggregateRef): Promise<StateAt<JobState> | undefined> {
    const [snap] = await this.read([ref.id]);
    return snap && snap.workspaceId === ref.workspaceId
      ? { state: snap.state, lastSeq: snap.lastSeq }
      : undefined;
  }

  save(ref: AggregateRef, state: JobState, lastSeq: number): Promise<void> {
    return this.write([{ workspaceId: ref.workspaceId, jobId: ref.id, lastSeq, state }]);
  }

  /** The valid snapshots of these jobs (rows of another format or that fail validation are skipped). */
  async read(jobIds: readonly string[]): Promise<JobSnapshot[]> {
    const out: JobSnapshot[] = [];
    for (let i = 0; i < jobIds.length; i += 5000) {
      const rows = await this.db
        .selectFrom('job_snapshots')
        .select(['job_id', 'workspace_id', 'last_seq', 'format', 'state'])
        .where('job_id', 'in', jobIds.slice(i, i + 5000))
        .where('format', '=', JOB_SNAPSHOT_FORMAT)
        .execute();
      for (const r of rows) {
        const state = jobStateSchema.safeParse(r.state);
        const lastSeq = Number(r.last_seq);
        if (!state.success || !Number.isSafeInteger(lastSeq) || lastSeq < 1) continue;
        out.push({ workspaceId: r.workspace_id, jobId: r.job_id, lastSeq, state: toState(state.data) });
      }
    }
    return out;
  }

  /** Stores snapshots; a stored one at a later sequence is kept (replicas write concurrently). */
  async write(snapshots: readonly JobSnapshot[]): Promise<void> {
    const now = new Date();
    for (let i = 0; i < snapshots.length; i += 500) {
      await this.db
        .insertInto('job_snapshots')
        .values(
          snapshots.slice(i, i + 500).map((s) => ({
            job_id: s.jobId,
            workspace_id: s.workspaceId,
            last_seq: s.lastSeq,
            format: JOB_SNAPSHOT_FORMAT,
            state: JSON.stringify(s.state),
            updated_at: now,
          })),
        )
        .onConflict((oc) =>
          oc
            .column('job_id')
            .doUpdateSet((eb) => ({
              last_seq: eb.ref('excluded.last_seq'),
              format: eb.ref('excluded.format'),
              state: eb.ref('excluded.state'),
              updated_at: eb.ref('excluded.updated_at'),
            }))
            .where(
              sql<boolean>`job_snapshots.last_seq < excluded.last_seq OR job_snapshots.format <> excluded.format`,
            ),
        )
        .execute();
    }
  }
}
