import type { Kysely } from 'kysely';
import type { MissedPolicy } from '#libs/contracts';
import type { SchedulingTables } from '../migrations/index.js';
import { dueFires } from './cron.js';

/** What the scheduler needs from the job aggregate: one scheduled fire (null: refused / already fired). */
export interface FireTarget {
  fire(workspaceId: string, jobId: string, fireAt: Date): Promise<{ runId: string; number: number } | null>;
}

export interface SchedulerOptions {
  /** Tick period (default 250 ms). */
  intervalMs?: number;
  /** Cap of the `run_all` policy (default 10). */
  runAllCap?: number;
  /** `skip`: a fire time this recent still fires after a pause of the scheduler (default 5 s). */
  skipGraceMs?: number;
  now?: () => Date;
  log?: (msg: string) => void;
}

export interface ScheduledJob {
  id: string;
  workspace_id: string;
  schedule: string;
  timezone: string;
  missed_policy: MissedPolicy;
  updated_at: Date;
  last_fire_at: Date | null;
}

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
): { fire: Date[]; cursor: Date } {
  const limit = policy === 'run_all' ? opts.runAllCap : 1;
  const { fires } = dueFires(expr, tz, cursor, now, limit);
  const latest = fires[fires.length - 1];
  if (!latest) return { fire: [], cursor };
  switch (policy) {
    case 'run_all':
      return { fire: fires, cursor: latest };
    case 'run_once':
      return { fire: [latest], cursor: latest };
    case 'skip':
      return {
        fire: now.getTime() - latest.getTime() <= opts.skipGraceMs ? [latest] : [],
        cursor: latest,
      };
  }
}

/**
 * Fires due schedules. Stateless across replicas: each fire is a RequestRun on the job aggregate
 * with command id `fire:<jobId>:<fireTime>` (Nats-Msg-Id) and the aggregate refuses a fire time at
 * or before its last one, so any number of schedulers creates each scheduled run once.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Per job: the last fire time handled by this process (the read model may lag behind it). */
  private readonly cursors = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly runAllCap: number;
  private readonly skipGraceMs: number;
  private readonly now: () => Date;
  private readonly log: (msg: string) => void;

  constructor(
    private readonly db: Kysely<SchedulingTables>,
    private readonly target: FireTarget,
    opts: SchedulerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.runAllCap = opts.runAllCap ?? 10;
    this.skipGraceMs = opts.skipGraceMs ?? 5_000;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? ((m) => console.error(`[scheduler] ${m}`));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = () => {
      if (this.stopped) return;
      this.running = this.tick()
        .catch((err: unknown) => this.log(`tick failed: ${(err as Error).message}`))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the active scheduled jobs. */
  async tick(): Promise<void> {
    const now = this.now();
    const jobs = (await this.db
      .selectFrom('jobs')
      .select(['id', 'workspace_id', 'schedule', 'timezone', 'missed_policy', 'updated_at', 'last_fire_at'])
      .where('active', '=', true)
      .where('schedule', 'is not', null)
      .execute()) as ScheduledJob[];
    const seen = new Set<string>();
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
        const p = plan(j.missed_policy, j.schedule, j.timezone, new Date(cursor), now, {
          runAllCap: this.runAllCap,
          skipGraceMs: this.skipGraceMs,
        });
        for (const at of p.fire) {
          try {
            await this.target.fire(j.workspace_id, j.id, at);
          } catch (err) {
            // Not retried: e.g. nothing deployed, or the profile is gone. The next fire time tries again.
            this.log(`job ${j.id} fire ${at.toISOString()} failed: ${(err as Error).message}`);
          }
        }
        this.cursors.set(j.id, p.cursor.getTime());
      }),
    );
    for (const id of this.cursors.keys()) if (!seen.has(id)) this.cursors.delete(id);
  }
}
