import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { z } from 'zod';
import type { NatsConnection } from '#libs/nats';
import { PeriodicTask } from '#libs/service-host';

/** Shards the scheduled jobs are hashed into. Fixed: every replica must hash a job to the same shard. */
export const SCHEDULER_SHARDS = 32;

/** The KV bucket of the scheduler's shard leases and replica heartbeats (one per subject prefix). */
export function shardBucketName(subjectPrefix: string): string {
  return subjectPrefix ? `SCHEDULER_SHARDS_${subjectPrefix}` : 'SCHEDULER_SHARDS';
}

/** The shard of a job: FNV-1a of its id, modulo `shards`. */
export function shardOf(jobId: string, shards = SCHEDULER_SHARDS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jobId.length; i++) h = Math.imul(h ^ jobId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

const shardKey = (shard: number) => `shard.${shard}`;
const memberKey = (id: string) => `member.${id}`;
const ShardValue = z.object({ owner: z.string().min(1).nullable() });
/** Messages in the bucket older than this are dropped (dead replicas' heartbeats, released shards). */
const BUCKET_TTL_MS = 60_000;
/** 10071: the key's last revision is not the one given (another replica wrote it first). */
const WRONG_LAST_SEQUENCE = 10071;

export interface ShardLeaseOptions {
  /** Shards (default SCHEDULER_SHARDS; tests use fewer). */
  shards?: number;
  /**
   * A shard whose lease was not renewed for this long (as seen on THIS replica's monotonic clock)
   * is taken over (default 3000 ms, at most 20 s).
   */
  leaseMs?: number;
  /** How often leases are renewed and shards rebalanced (default leaseMs / 3). */
  renewMs?: number;
  /** This replica's id (default `<host>-<pid>-<random>`). */
  replicaId?: string;
  /** Told the shards this replica just took (a job's cursor must then be read again). */
  onAcquire?: (shards: number[]) => void;
  log?: (msg: string) => void;
  maxBytes?: number;
}

interface Seen {
  revision: number;
  /** Owner of a shard key (null: released or deleted); for member keys unused. */
  owner: string | null;
  /** performance.now() when this revision was first seen here. */
  at: number;
}

/**
 * Per-shard leadership of the scheduler replicas, with leases in a JetStream KV bucket.
 *
 * - Jobs are hashed into S shards (`shardOf`). A replica fires only the jobs of the shards it owns.
 * - Key `shard.<n>` holds `{owner}`; the owner renews it every `renewMs` with a compare-and-set on
 *   its revision (KV update). A renewal refused because the revision moved means another replica
 *   took the shard: this one stops firing it at once. One that cannot reach NATS for `leaseMs`
 *   gives its shards up by itself.
 * - Key `member.<id>` is each replica's heartbeat (every `renewMs`): a replica that owns nothing
 *   still counts, so each aims at ceil(S / live replicas) shards, releases what it holds beyond
 *   that (`{owner: null}`) and takes free shards, or shards whose key did not change for `leaseMs`
 *   (their owner died), with a compare-and-set on the revision it saw: one taker wins.
 * - Liveness is judged by the revisions a replica SEES change (a watch on the bucket), timed on its
 *   own monotonic clock: wall clocks of replicas are never compared, so clock skew does not matter.
 * - A clean stop releases the shards at once; after SIGKILL they are taken within leaseMs plus
 *   one renewal. Two replicas may both believe they own a shard for a moment (a paused process
 *   whose renewal has not failed yet): the job aggregate's optimistic concurrency and the fire's
 *   command id keep that fire single, the lease only spares the work.
 */
export class ShardLeases {
  readonly replicaId: string;
  readonly shards: number;
  readonly leaseMs: number;
  private readonly renewMs: number;
  /** Owned shard → revision of our last write and when it was acknowledged (monotonic). */
  private readonly owned = new Map<number, { revision: number; renewedAt: number }>();
  private readonly seen = new Map<string, Seen>();
  private readonly task: PeriodicTask;
  private watching: Promise<void> | undefined;
  private watcher: { stop(): void } | undefined;
  private stopped = false;
  /** When the watch last delivered this replica's own heartbeat (monotonic): a stalled watch is restarted. */
  private selfSeenAt = 0;
  private readonly log: (msg: string) => void;
  /** Counters for tests and operators. */
  readonly stats = { acquired: 0, released: 0, lost: 0 };

  private constructor(
    private readonly kv: KV,
    private readonly opts: ShardLeaseOptions,
  ) {
    this.shards = opts.shards ?? SCHEDULER_SHARDS;
    this.leaseMs = Math.min(20_000, Math.max(300, opts.leaseMs ?? 3_000));
    this.renewMs = Math.max(50, Math.min(opts.renewMs ?? Math.floor(this.leaseMs / 3), this.leaseMs / 2));
    this.replicaId = opts.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = opts.log ?? ((m) => console.error(`[scheduler-shards] ${m}`));
    this.task = new PeriodicTask(
      () => this.tick(),
      () => this.renewMs,
      (err) => this.log(`lease pass failed: ${(err as Error).message}`),
    );
  }

  static async open(
    nc: NatsConnection,
    subjectPrefix: string,
    opts: ShardLeaseOptions = {},
  ): Promise<ShardLeases> {
    const kv = await new Kvm(nc).create(shardBucketName(subjectPrefix), {
      history: 1,
      ttl: BUCKET_TTL_MS,
      maxValueSize: 1024,
      ...(opts.maxBytes && opts.maxBytes > 0 ? { max_bytes: opts.maxBytes } : {}),
    });
    return new ShardLeases(kv, opts);
  }

  /** Whether this replica fires the jobs of `shard` now. */
  owns(shard: number): boolean {
    return this.owned.has(shard);
  }

  ownsJob(jobId: string): boolean {
    return this.owned.has(shardOf(jobId, this.shards));
  }

  get ownedShards(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Starts watching the bucket, takes its first shards (awaited), then renews in the background. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.watch();
    await this.tick();
    this.task.start();
  }

  /** Stops renewing and releases the owned shards, so that other replicas take them at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.task.stop();
    const mine = [...this.owned];
    this.owned.clear();
    await Promise.all(
      mine.map(([shard, o]) =>
        this.kv.update(shardKey(shard), JSON.stringify({ owner: null }), o.revision).catch(() => undefined),
      ),
    );
    await this.kv.delete(memberKey(this.replicaId)).catch(() => undefined);
    this.watcher?.stop();
    await this.watching;
  }

  /** Watches every key; resolves once the current values are in (or at once for an empty bucket). */
  private async watch(): Promise<void> {
    this.selfSeenAt = performance.now();
    const iter = await this.kv.watch();
    this.watcher = iter;
    const status = await this.kv.status();
    let ready!: () => void;
    const initial = new Promise<void>((r) => (ready = r));
    if (status.values === 0) ready();
    this.watching = (async () => {
      try {
        for await (const e of iter) {
          this.note(e);
          if (e.delta === 0 || e.isUpdate) ready();
        }
      } catch (err) {
        if (!this.stopped) this.log(`watch ended: ${(err as Error).message}`);
      } finally {
        ready();
        this.watching = undefined;
      }
    })();
    // An empty or unreadable bucket must not hold the start up.
    await Promise.race([initial, new Promise((r) => setTimeout(r, 1_000))]);
  }

  private note(e: KvWatchEntry): void {
    const prev = this.seen.get(e.key);
    if (prev && prev.revision >= e.revision) return;
    let owner: string | null = null;
    if (e.operation === 'PUT' && e.key.startsWith('shard.')) {
      try {
        const v = ShardValue.safeParse(e.json());
        owner = v.success ? v.data.owner : null;
      } catch {
        owner = null;
      }
    }
    this.seen.set(e.key, { revision: e.revision, owner, at: performance.now() });
    if (e.key === memberKey(this.replicaId)) this.selfSeenAt = performance.now();
    // Deletes and purges end a member.
    if (e.operation !== 'PUT' && e.key.startsWith('member.')) this.seen.delete(e.key);
  }

  /** One pass: heartbeat, renew, then release or take shards toward ceil(S / live replicas). */
  async tick(): Promise<void> {
    if (this.watching && performance.now() - this.selfSeenAt > 2 * this.leaseMs) {
      // Our own heartbeats stopped coming back: the watch stalled (a reconnect it did not survive).
      this.log('the watch of the shard bucket stalled: watching again');
      this.watcher?.stop();
      await this.watching;
    }
    if (!this.watching && !this.stopped) await this.watch(); // the watch ended: start it again
    const now = performance.now();
    await this.kv.put(memberKey(this.replicaId), JSON.stringify({ at: new Date().toISOString() }));
    await this.renew(now);
    const live = new Set([this.replicaId]);
    for (const [key, s] of this.seen) {
      if (!key.startsWith('member.')) continue;
      if (now - s.at <= this.leaseMs) live.add(key.slice('member.'.length));
      else if (now - s.at > BUCKET_TTL_MS) this.seen.delete(key);
    }
    const target = Math.ceil(this.shards / live.size);
    if (this.owned.size > target) await this.release(this.owned.size - target);
    else if (this.owned.size < target) await this.take(target - this.owned.size, now);
  }

  private async renew(now: number): Promise<void> {
    await Promise.all(
      [...this.owned].map(async ([shard, o]) => {
        try {
          const revision = await this.kv.update(
            shardKey(shard),
            JSON.stringify({ owner: this.replicaId }),
            o.revision,
          );
          // Still ours unless it was dropped meanwhile (a stop).
          if (this.owned.has(shard)) this.owned.set(shard, { revision, renewedAt: performance.now() });
        } catch (err) {
          const cur = this.seen.get(shardKey(shard));
          if (cur && cur.owner === this.replicaId && cur.revision > o.revision) {
            // Our own earlier renewal went through although its answer was lost: go on from it.
            this.owned.set(shard, { revision: cur.revision, renewedAt: o.renewedAt });
          } else if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) {
            this.owned.delete(shard);
            this.stats.lost++;
            this.log(`shard ${shard} was taken over by another replica`);
          } else if (now - o.renewedAt > this.leaseMs) {
            // Others take it after leaseMs without a renewal: stop firing it ourselves.
            this.owned.delete(shard);
            this.stats.lost++;
            this.log(`shard ${shard} given up: its lease could not be renewed (${(err as Error).message})`);
          }
        }
      }),
    );
  }

  private async release(n: number): Promise<void> {
    const extra = this.ownedShards.slice(-n);
    for (const shard of extra) {
      const o = this.owned.get(shard)!;
      this.owned.delete(shard); // stop firing it before another replica may start
      this.stats.released++;
      await this.kv
        .update(shardKey(shard), JSON.stringify({ owner: null }), o.revision)
        .catch(() => undefined);
    }
  }

  private async take(n: number, now: number): Promise<void> {
    // Free shards first, then those whose owner stopped renewing; from a per-replica offset, so
    // that replicas starting together do not all race for the same shards.
    const start = shardOf(this.replicaId, this.shards);
    const free: number[] = [];
    const expired: number[] = [];
    for (let i = 0; i < this.shards; i++) {
      const shard = (start + i) % this.shards;
      if (this.owned.has(shard)) continue;
      const s = this.seen.get(shardKey(shard));
      if (!s || s.owner === null) free.push(shard);
      else if (now - s.at > this.leaseMs) expired.push(shard);
    }
    const acquired: number[] = [];
    for (const shard of [...free, ...expired]) {
      if (acquired.length >= n) break;
      const s = this.seen.get(shardKey(shard));
      const value = JSON.stringify({ owner: this.replicaId });
      try {
        const revision = s
          ? await this.kv.update(shardKey(shard), value, s.revision)
          : await this.kv.create(shardKey(shard), value);
        this.owned.set(shard, { revision, renewedAt: performance.now() });
        acquired.push(shard);
        if (s && s.owner !== null)
          this.log(`took over shard ${shard} from ${s.owner} (no renewal for ${Math.round(now - s.at)} ms)`);
      } catch (err) {
        // Another replica was first, or the key expired from the bucket: what we saw is stale.
        if (
          !(err instanceof JetStreamApiError) &&
          !/wrong last sequence|exists/i.test((err as Error).message)
        )
          throw err;
        const cur = this.seen.get(shardKey(shard));
        if (cur && cur.revision === s?.revision) this.seen.delete(shardKey(shard));
      }
    }
    if (acquired.length > 0) {
      this.stats.acquired += acquired.length;
      this.opts.onAcquire?.(acquired);
    }
  }
}
