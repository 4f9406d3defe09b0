import type { Kysely } from 'kysely';
import type { MissedPolicy } from '#libs/contracts';
import { PeriodicTask } from '#libs/service-host';
import type { SchedulingTables } from '../migrations/index.js';
import {
  listScheduledJobs,
  scheduledJobsFingerprint,
  type ScheduledJob,
} from '../job/read-models/scheduled-jobs.queries.js';
import { DomainError } from '#libs/eventstore';
import { dueFires, nextFire } from './cron.js';
import { schedulerFireLag, secondsSince } from '#libs/observability';

/** What the scheduler needs from the job aggregate: one scheduled fire (null: refused / already fired). */
export interface FireTarget {
  fire(workspaceId: string, jobId: string, fireAt: Date): Promise<{ runId: string; number: number } | null>;
  /** Optional: load these jobs ahead of their first fire (after each read of the jobs; awaited before the first fires). */
  prewarm?(jobs: readonly { workspaceId: string; jobId: string }[]): Promise<number>;
}

/**
 * Whether a failed fire is worth retrying: a decision of the job (DomainError, NotFoundError:
 * e.g. the job is named differently) will not change; anything else (NATS timeout, a database
 * error, concurrency conflicts that outlasted their retries) may.
 */
export function isTransient(err: unknown): boolean {
  return !(err instanceof DomainError) || (err as DomainError).status === 409;
}

export interface SchedulerOptions {
  /** Tick period (default 250 ms). */
  intervalMs?: number;
  /** The scheduled jobs are read again at least this often even when their fingerprint did not change (default 10 s). */
  reloadMs?: number;
  /** Cap of the `run_all` policy (default 10). */
  runAllCap?: number;
  /** `skip`: a fire time this recent still fires after a pause of the scheduler (default 5 s). */
  skipGraceMs?: number;
  /** A fire that failed transiently is retried until this long after its fire time (default 5 min). */
  retryWindowMs?: number;
  /** First retry delay, doubled per attempt up to retryMaxDelayMs (defaults 250 ms, 10 s). */
  retryDelayMs?: number;
  retryMaxDelayMs?: number;
  /**
   * Whether this replica fires a job (its shard's lease, ShardLeases.ownsJob); default: every job.
   * Only the jobs it owns are planned and fired.
   */
  owns?: (jobId: string) => boolean;
  now?: () => Date;
  log?: (msg: string) => void;
}

export type { ScheduledJob };

/**
 * Which fire times of a job to fire now, and where the job's cursor moves. `cursor` is the last
 * fire time already handled (fired or skipped); fire times in (cursor, now] are due.
 */
export function plan(
  policy: MissedPolicy,
  expr: string,
  tz: string,
  cursor: Date,
  now: Date,
  opts: { runAllCap: number; skipGraceMs: number },
): { fire: Date[]; cursor: Date; next: Date | null } {
  const limit = policy === 'run_all' ? opts.runAllCap : 1;
  const { fires, next } = dueFires(expr, tz, cursor, now, limit);
  const latest = fires[fires.length - 1];
  if (!latest) return { fire: [], cursor, next };
  switch (policy) {
    case 'run_all':
      return { fire: fires, cursor: latest, next };
    case 'run_once':
      return { fire: [latest], cursor: latest, next };
    case 'skip':
      return {
        fire: now.getTime() - latest.getTime() <= opts.skipGraceMs ? [latest] : [],
        cursor: latest,
        next,
      };
  }
}

/**
 * Fires due schedules. Each fire is a RequestRun on the job aggregate with command id
 * `fire:<jobId>:<fireTime>` (Nats-Msg-Id) and the aggregate refuses a fire time at or before its
 * last one, so any number of schedulers creates each scheduled run once. Replicas share the work
 * through `owns` (shard leases): each plans only its own jobs.
 */
export class Scheduler {
  private readonly task: PeriodicTask;
  /** Per job: the last fire time handled by this process (the read model may lag behind it). */
  private readonly cursors = new Map<string, number>();
  /** Per job: its next fire time after its cursor (computed once per cursor, schedule and zone). */
  private readonly nextDue = new Map<string, { key: string; at: number }>();
  /** The earliest next fire time (or retry) seen by the last tick: the loop wakes up for it. */
  private soonest = Infinity;
  private readonly intervalMs: number;
  private readonly reloadMs: number;
  /** The active scheduled jobs as last read, their fingerprint (count and versions) and when. */
  private jobs: ScheduledJob[] = [];
  private jobsFingerprint = '';
  private jobsReadAt = -Infinity;
  private prewarmed = false;
  private warming: Promise<void> | undefined;
  private readonly runAllCap: number;
  private readonly skipGraceMs: number;
  private readonly retryWindowMs: number;
  private readonly retryDelayMs: number;
  private readonly retryMaxDelayMs: number;
  /** Fires that failed transiently, by `<jobId> <fireAt>`: retried with backoff while in their window. */
  private readonly retries = new Map<string, Retry>();
  /** Counters for tests and operators. */
  readonly stats = { fired: 0, failed: 0, retried: 0, gaveUp: 0 };
  private readonly now: () => Date;
  private readonly log: (msg: string) => void;
  private readonly owns: (jobId: string) => boolean;

  constructor(
    private readonly db: Kysely<SchedulingTables>,
    private readonly target: FireTarget,
    opts: SchedulerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.reloadMs = opts.reloadMs ?? 10_000;
    this.runAllCap = opts.runAllCap ?? 10;
    this.skipGraceMs = opts.skipGraceMs ?? 5_000;
    this.retryWindowMs = opts.retryWindowMs ?? 5 * 60_000;
    this.retryDelayMs = opts.retryDelayMs ?? 250;
    this.retryMaxDelayMs = opts.retryMaxDelayMs ?? 10_000;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? ((m) => console.error(`[scheduler] ${m}`));
    this.owns = opts.owns ?? (() => true);
    // Wake up at the next fire time (or after intervalMs at the latest, to see job changes).
    this.task = new PeriodicTask(
      () => this.tick(),
      () => Math.min(this.intervalMs, this.soonest - this.now().getTime()),
      (err) => this.log(`tick failed: ${(err as Error).message}`),
    );
  }

  start(): void {
    this.task.start();
  }

  /**
   * Stops firing. With `graceMs`, the fires due within that time are fired first: a scheduler
   * being restarted (an upgrade, `docker restart`) would otherwise leave them to its replacement,
   * which needs about a second to start and load the jobs. Waits at most graceMs + 5 s.
   */
  async stop(graceMs = 0): Promise<void> {
    const until = this.now().getTime() + graceMs;
    const giveUp = Date.now() + graceMs + 5_000;
    let waited = false;
    while (graceMs > 0 && this.task.active && this.soonest <= until && Date.now() < giveUp) {
      if (!waited) this.log(`stopping after the fires due at ${new Date(this.soonest).toISOString()}`);
      waited = true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.task.stop();
  }

  /**
   * Reads the scheduled jobs again at the next tick (this replica just took shards: their jobs'
   * `last_fire_at` as last read may predate the fires of their previous owner).
   */
  reload(): void {
    this.jobsReadAt = -Infinity;
  }

  /**
   * The active scheduled jobs. Each tick asks the database only for a fingerprint of them (their
   * number and a hash of ids and versions: one row); the rows are read again when it changed (a
   * job created, changed, (de)activated, deleted) and at least every `reloadMs` (fires recorded by
   * other replicas). Between reads, what this process fired itself is in its cursors.
   */
  private async scheduledJobs(now: number): Promise<ScheduledJob[]> {
    const fingerprint = await scheduledJobsFingerprint(this.db);
    if (fingerprint === this.jobsFingerprint && now - this.jobsReadAt < this.reloadMs) return this.jobs;
    this.jobs = await listScheduledJobs(this.db);
    this.jobsFingerprint = fingerprint;
    this.jobsReadAt = now;
    if (this.target.prewarm) {
      // Only this replica's jobs (its shards); those of shards it takes later load after the take (reload).
      const jobs = this.jobs
        .filter((j) => this.owns(j.id))
        .map((j) => ({ workspaceId: j.workspace_id, jobId: j.id }));
      if (!this.prewarmed) {
        // Before the first fires: one bulk read of the jobs beats a read per job at the fire time.
        this.prewarmed = true;
        await this.prewarm(jobs);
      } else if (!this.warming) {
        // Jobs created or changed since: loaded in the background, ahead of their first fire.
        this.warming = this.prewarm(jobs).finally(() => (this.warming = undefined));
      }
    }
    return this.jobs;
  }

  private async prewarm(jobs: { workspaceId: string; jobId: string }[]): Promise<void> {
    const t0 = Date.now();
    try {
      const n = await this.target.prewarm!(jobs);
      if (n > 100) this.log(`loaded ${n} scheduled jobs in ${Date.now() - t0} ms`);
    } catch (err) {
      this.log(
        `loading the scheduled jobs failed (each is read at its first fire): ${(err as Error).message}`,
      );
    }
  }

  /** One pass over the active scheduled jobs. */
  async tick(): Promise<void> {
    const now = this.now();
    const jobs = (await this.scheduledJobs(now.getTime())).filter((j) => this.owns(j.id));
    const seen = new Set<string>();
    let soonest = Infinity;
    await Promise.all(
      jobs.map(async (j) => {
        seen.add(j.id);
        // Start from the later of: the job's last change (no fire of a time before the schedule
        // existed), its last recorded fire, and what this process fired itself.
        const cursor = Math.max(
          j.updated_at.getTime(),
          j.last_fire_at?.getTime() ?? 0,
          this.cursors.get(j.id) ?? 0,
        );
        const keyOf = (c: number) => `${j.schedule}|${j.timezone}|${c}`;
        let due = this.nextDue.get(j.id);
        if (due?.key !== keyOf(cursor)) {
          due = {
            key: keyOf(cursor),
            at: nextFire(j.schedule, j.timezone, new Date(cursor))?.getTime() ?? Infinity,
          };
          this.nextDue.set(j.id, due);
        }
        if (now.getTime() < due.at) {
          soonest = Math.min(soonest, due.at);
          return; // nothing due: no cron work
        }
        const p = plan(j.missed_policy, j.schedule, j.timezone, new Date(cursor), now, {
          runAllCap: this.runAllCap,
          skipGraceMs: this.skipGraceMs,
        });
        for (const at of p.fire)
          await this.fireOnce({ workspaceId: j.workspace_id, jobId: j.id, at, attempt: 0 });
        const moved = Math.max(cursor, p.cursor.getTime());
        this.cursors.set(j.id, moved);
        // The first fire time after `now` (none is due in (moved, now]), from the same parse.
        const next = p.next?.getTime() ?? Infinity;
        this.nextDue.set(j.id, { key: keyOf(moved), at: next });
        soonest = Math.min(soonest, next);
      }),
    );
    for (const id of this.cursors.keys()) if (!seen.has(id)) this.cursors.delete(id);
    for (const id of this.nextDue.keys()) if (!seen.has(id)) this.nextDue.delete(id);
    await this.retryDue(now);
    for (const r of this.retries.values()) soonest = Math.min(soonest, r.nextAt);
    this.soonest = soonest;
  }

  /** Fires that wait for a retry. */
  get pendingRetries(): number {
    return this.retries.size;
  }

  private async fireOnce(f: Omit<Retry, 'nextAt'>): Promise<void> {
    const key = `${f.jobId} ${f.at.toISOString()}`;
    try {
      // runway_scheduler_fire_lag_seconds: fire time → RunRequested stored (not for a refused fire).
      if (await this.target.fire(f.workspaceId, f.jobId, f.at))
        schedulerFireLag.observe(secondsSince(f.at.getTime()));
      this.retries.delete(key);
      this.stats.fired++;
      if (f.attempt > 0) this.stats.retried++;
    } catch (err) {
      this.stats.failed++;
      const msg = (err as Error).message;
      const when = `job ${f.jobId} fire ${f.at.toISOString()}`;
      if (!isTransient(err)) {
        // The job refuses it for good (a fire that merely cannot run is recorded by the job as a skipped run).
        this.retries.delete(key);
        this.log(`${when} rejected, not retried: ${msg}`);
        return;
      }
      const delay = Math.min(this.retryMaxDelayMs, this.retryDelayMs * 2 ** f.attempt);
      const nextAt = this.now().getTime() + delay;
      if (nextAt > f.at.getTime() + this.retryWindowMs) {
        this.retries.delete(key);
        this.stats.gaveUp++;
        this.log(`${when} failed ${f.attempt + 1} times, giving up (outside the retry window): ${msg}`);
        return;
      }
      this.retries.set(key, { ...f, attempt: f.attempt + 1, nextAt });
      this.log(`${when} failed (attempt ${f.attempt + 1}), retrying in ${delay} ms: ${msg}`);
    }
  }

  private async retryDue(now: Date): Promise<void> {
    const due = [...this.retries.values()].filter((r) => r.nextAt <= now.getTime());
    await Promise.all(due.map((r) => this.fireOnce(r)));
  }
}

interface Retry {
  workspaceId: string;
  jobId: string;
  at: Date;
  attempt: number;
  nextAt: number;
}
