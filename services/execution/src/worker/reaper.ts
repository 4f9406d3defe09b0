import type { Kysely } from 'kysely';
import type { ExecutionTables } from '../migrations/index.js';
import { activeRunsUnchangedSince } from '../run/read-models/active-runs.queries.js';
import type { RunAggregates } from '../run/run.handler.js';
import type { RunLeases } from './leases.js';

export interface ReaperOptions {
  /** Between sweeps (default 5 s). */
  intervalMs?: number;
  /** A run whose status changed less than this ago is left alone (its worker may not have put the lease yet). */
  graceMs?: number;
  onError?: (err: unknown) => void;
  onReaped?: (runId: string) => void;
}

/**
 * Fails runs whose worker is gone: an active run (starting, running, finalizing, cancelling) with no
 * lease in the KV bucket. Several reapers may run: the run aggregate ignores a second failure.
 *
 * After JetStream was unreachable (a sweep failed: a cluster restarting, this process cut off), no
 * run is failed until it has been reachable again for one lease TTL: the leases' age kept counting
 * while their workers could not renew them, so a live worker's lease may have expired meanwhile,
 * and it puts it back within its renewal interval. (Seen in test/durability/cluster-faults: a
 * whole-cluster restart failed the runs of live workers as worker_lost.)
 */
export class LeaseReaper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** When JetStream became reachable again after a failed sweep (0: no failure seen). */
  private reachableSince = 0;
  private failed = false;

  constructor(
    private readonly db: Kysely<ExecutionTables>,
    private readonly leases: RunLeases,
    private readonly commands: RunAggregates,
    private readonly opts: ReaperOptions = {},
  ) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.sweeping = this.sweep()
        .catch((err: unknown) => {
          this.failed = true;
          this.opts.onError?.(err);
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs ?? 5_000);
        });
    };
    this.timer = setTimeout(tick, this.opts.intervalMs ?? 5_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sweeping;
  }

  /** One pass; returns the ids of the runs it failed. */
  async sweep(): Promise<string[]> {
    const before = new Date(Date.now() - (this.opts.graceMs ?? 10_000));
    const rows = await activeRunsUnchangedSince(this.db, before, 1000);
    const reaped: string[] = [];
    if (this.failed) {
      this.failed = false;
      this.reachableSince = Date.now();
    }
    const holding = Date.now() - this.reachableSince < this.leases.ttlMs;
    for (const r of rows) {
      if (await this.leases.get(r.id)) continue;
      if (holding) continue;
      if (await this.leases.heldByLeader(r.id)) continue; // a replica behind answered the direct get
      const res = await this.commands.handle(
        r.workspace_id,
        r.id,
        {
          type: 'FailRun',
          reason: 'worker_lost',
          message: `worker ${r.worker_id ?? '?'} stopped renewing its lease (it died or lost its connection)`,
          exitCode: null,
          signal: null,
          durationMs: r.started_at ? Date.now() - r.started_at.getTime() : null,
          stderrTail: [],
          endedAt: null,
        },
        { commandId: `${r.id}:worker_lost`, actor: 'reaper' },
      );
      if (res.events.length > 0 && !res.duplicate) {
        reaped.push(r.id);
        this.opts.onReaped?.(r.id);
      }
    }
    return reaped;
  }
}
