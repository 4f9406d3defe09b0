import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '#libs/nats';

export interface LeaseInfo {
  workerId: string;
  host: string;
  /** pid of the worker process. */
  workerPid: number;
  /** pid (= process group id) of the run's process, once spawned. */
  runPid: number | null;
  at: string;
}

/** The KV bucket of run leases: one key per active run, refreshed by its worker, expiring on its own. */
export function leaseBucketName(subjectPrefix: string): string {
  return subjectPrefix ? `RUN_LEASES_${subjectPrefix}` : 'RUN_LEASES';
}

/**
 * Liveness of running runs. A worker puts a lease per run it executes and refreshes it every few
 * seconds; the bucket's TTL drops a lease that is not refreshed (its worker died or lost NATS).
 */
export class RunLeases {
  private constructor(
    private readonly kv: KV,
    readonly ttlMs: number,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
  ) {}

  static async open(
    nc: NatsConnection,
    subjectPrefix: string,
    ttlMs = 15_000,
    maxBytes = 0,
    replicas = 1,
  ): Promise<RunLeases> {
    const kv = await new Kvm(nc).create(leaseBucketName(subjectPrefix), {
      ttl: ttlMs,
      history: 1,
      replicas,
      maxValueSize: 4096,
      ...(maxBytes > 0 ? { max_bytes: maxBytes } : {}),
    });
    return new RunLeases(kv, ttlMs, await jetstreamManager(nc), leaseBucketName(subjectPrefix));
  }

  async put(runId: string, info: LeaseInfo): Promise<void> {
    await this.kv.put(runId, JSON.stringify(info));
  }

  async release(runId: string): Promise<void> {
    await this.kv.delete(runId);
  }

  /**
   * Whether the bucket's leader holds a lease of the run. `get` reads with a direct get, which any
   * replica of a clustered bucket may answer, including one still catching up after a restart that
   * lacks the latest puts: the reaper confirms an absence here before it fails a run (seen in
   * test/durability/cluster-faults: runs of live workers failed as worker_lost after a node restart).
   */
  async heldByLeader(runId: string): Promise<boolean> {
    const m = await this.jsm.streams.getMessage(`KV_${this.bucket}`, {
      last_by_subj: `$KV.${this.bucket}.${runId}`,
    });
    if (!m || m.data.length === 0) return false;
    const op = m.header?.get('KV-Operation');
    return !op || op === 'PUT';
  }

  /** The lease of a run, if it is held (not expired, not released). */
  async get(runId: string): Promise<LeaseInfo | undefined> {
    const e = await this.kv.get(runId);
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    try {
      return e.json<LeaseInfo>();
    } catch {
      return undefined;
    }
  }
}
