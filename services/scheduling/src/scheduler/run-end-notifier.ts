import type { Kysely } from 'kysely';
import { PeriodicTask } from '#libs/service-host';
import type { SchedulingTables } from '../migrations/index.js';

/** What the notifier needs from the job aggregate. */
export interface RunEndTarget {
  noteRunEnded(workspaceId: string, jobId: string, runId: string, status: string): Promise<void>;
}

export interface RunEndNotifierOptions {
  intervalMs?: number;
  /** Rows per pass (default 500). */
  batch?: number;
  /** Whether this replica tells a job (its scheduler shard); default every job. */
  owns?: (jobId: string) => boolean;
  log?: (msg: string) => void;
}

/**
 * Tells jobs that their runs ended: reads `job_runs` rows that ended and are not `noted` (the job
 * recorded RunEnded) and sends NoteRunEnded, so the job decider knows which runs are active when it
 * applies the overlap policy, and requests a queued fire. Runs in every scheduling process next to
 * the scheduler; the command is idempotent, so replicas and resends are harmless.
 */
export class RunEndNotifier {
  private readonly task: PeriodicTask;
  /** Runs told recently (until the projection marks them noted): not told again for a while. */
  private readonly sent = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly batch: number;
  private readonly owns: ((jobId: string) => boolean) | undefined;
  private readonly log: (msg: string) => void;

  constructor(
    private readonly db: Kysely<SchedulingTables>,
    private readonly target: RunEndTarget,
    opts: RunEndNotifierOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.batch = opts.batch ?? 500;
    this.owns = opts.owns;
    this.log = opts.log ?? ((m) => console.error(`[run-end-notifier] ${m}`));
    this.task = new PeriodicTask(
      () => this.tick(),
      () => this.intervalMs,
      (err) => this.log(`pass failed: ${(err as Error).message}`),
    );
  }

  start(): void {
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  async tick(): Promise<void> {
    const now = Date.now();
    for (const [id, at] of this.sent) if (now - at > 30_000) this.sent.delete(id);
    const rows = await this.db
      .selectFrom('job_runs')
      .select(['run_id', 'job_id', 'workspace_id', 'ended_status'])
      .where('ended_at', 'is not', null)
      .where('noted', '=', false)
      .orderBy('ended_at')
      .limit(this.batch)
      .execute();
    await Promise.all(
      rows
        .filter((r) => !this.sent.has(r.run_id) && (this.owns?.(r.job_id) ?? true))
        .map(async (r) => {
          try {
            await this.target.noteRunEnded(r.workspace_id, r.job_id, r.run_id, r.ended_status ?? 'ended');
            this.sent.set(r.run_id, Date.now());
          } catch (err) {
            this.log(`run ${r.run_id} of job ${r.job_id}: ${(err as Error).message} (tried again next pass)`);
          }
        }),
    );
  }
}
