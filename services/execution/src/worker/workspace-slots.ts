import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';
import type { NatsConnection } from '#libs/nats';

/** The KV bucket of the runs in progress per workspace (the concurrency quota). */
export function slotsBucketName(subjectPrefix: string, what: 'runs' | 'apps' = 'runs'): string {
  const name = what === 'apps' ? 'APP_SLOTS' : 'RUN_SLOTS';
  return subjectPrefix ? `${name}_${subjectPrefix}` : name;
}

const entrySchema = z.array(z.object({ runId: z.string(), at: z.number() }));
type Entry = z.infer<typeof entrySchema>[number];

/** An entry without a lease is a run whose worker died: freed after this long (the lease TTL covers the gap before its first lease). */
const STALE_MS = 30_000;

/**
 * At most N runs in progress per workspace, across every worker: one key per workspace holding the
 * runs that hold a slot, changed only with compare-and-set on its revision, so two workers
 * claiming at once cannot both take the last slot. A run of a dead worker is freed once its lease
 * is gone.
 */
export class WorkspaceSlots {
  private constructor(private readonly kv: KV) {}

  static async open(
    nc: NatsConnection,
    subjectPrefix: string,
    maxBytes: number,
    replicas = 1,
    /** `apps`: the interactive apps in progress per workspace (RUNWAY_INTERACTIVE_PER_WORKSPACE). */
    what: 'runs' | 'apps' = 'runs',
  ): Promise<WorkspaceSlots> {
    const kv = await new Kvm(nc).create(slotsBucketName(subjectPrefix, what), {
      history: 1,
      replicas,
      ...(maxBytes > 0 ? { max_bytes: maxBytes } : {}),
    });
    return new WorkspaceSlots(kv);
  }

  private async read(ws: string): Promise<{ runs: Entry[]; revision: number }> {
    const e = await this.kv.get(ws);
    if (!e || e.operation !== 'PUT' || e.length === 0) return { runs: [], revision: e?.revision ?? 0 };
    const parsed = entrySchema.safeParse(JSON.parse(e.string()));
    return { runs: parsed.success ? parsed.data : [], revision: e.revision };
  }

  private async write(ws: string, runs: Entry[], revision: number): Promise<boolean> {
    try {
      if (revision === 0) await this.kv.create(ws, JSON.stringify(runs));
      else await this.kv.update(ws, JSON.stringify(runs), revision);
      return true;
    } catch {
      return false; // someone else changed it first: read again
    }
  }

  /**
   * Takes a slot for the run; false when the workspace already has `limit` runs in progress.
   * `hasLease` tells whether a run's worker still holds it (to free the slots of dead workers).
   */
  async acquire(
    ws: string,
    runId: string,
    limit: number,
    hasLease: (runId: string) => Promise<boolean>,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { runs, revision } = await this.read(ws);
      if (runs.some((r) => r.runId === runId)) return true;
      let live = runs;
      if (live.length >= limit) {
        const now = Date.now();
        const checked = await Promise.all(
          live.map(async (r) => (now - r.at < STALE_MS || (await hasLease(r.runId)) ? r : undefined)),
        );
        live = checked.filter((r): r is Entry => r !== undefined);
        if (live.length >= limit) {
          if (live.length !== runs.length) await this.write(ws, live, revision);
          return false;
        }
      }
      if (await this.write(ws, [...live, { runId, at: Date.now() }], revision)) return true;
    }
    throw new Error(`workspace ${ws}: the run slots are contended, try later`);
  }

  async release(ws: string, runId: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { runs, revision } = await this.read(ws);
      if (!runs.some((r) => r.runId === runId)) return;
      if (
        await this.write(
          ws,
          runs.filter((r) => r.runId !== runId),
          revision,
        )
      )
        return;
    }
  }
}
