import { Kvm, type KV } from '@nats-io/kv';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '#libs/nats';
import { PeriodicTask } from '#libs/service-host';

/** Which scheduler fires a job first; the others fire it only as a backup, a grace later. */
export interface FireShares {
  mine(jobId: string): boolean;
}

export function schedulersBucketName(subjectPrefix: string): string {
  return subjectPrefix ? `SCHEDULERS_${subjectPrefix}` : 'SCHEDULERS';
}

/** FNV-1a of a job id: the same share on every replica. */
export function shareOf(jobId: string, members: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jobId.length; i++) {
    h ^= jobId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % members;
}

/**
 * The live scheduling processes, in a KV bucket with a TTL (each refreshes its key every few
 * seconds; one that stops deletes it, one that dies expires). Jobs are shared among them by hash,
 * so each fire is worked on by one process instead of all of them. It is only a preference, never
 * needed for correctness (the job aggregate fires each time once whoever asks): a process that is
 * gone, or not known yet, leaves its share to the others after the backup grace.
 */
export class SchedulerMembers implements FireShares {
  readonly id = randomUUID();
  private members: string[] = [];
  private readonly task: PeriodicTask;

  private constructor(
    private readonly kv: KV,
    refreshMs: number,
    log: (m: string) => void,
  ) {
    this.task = new PeriodicTask(
      () => this.refresh(),
      () => refreshMs,
      (err) => log(`membership refresh failed: ${String(err)}`),
    );
  }

  static async open(
    nc: NatsConnection,
    subjectPrefix: string,
    opts: { ttlMs?: number; refreshMs?: number; log?: (m: string) => void } = {},
  ): Promise<SchedulerMembers> {
    const kv = await new Kvm(nc).create(schedulersBucketName(subjectPrefix), {
      ttl: opts.ttlMs ?? 10_000,
      history: 1,
    });
    return new SchedulerMembers(kv, opts.refreshMs ?? 1_000, opts.log ?? (() => undefined));
  }

  /** Joins (puts its key) and keeps the member list fresh. */
  start(): void {
    this.task.start();
  }

  /** Leaves at once: the others take its share on their next refresh. */
  async stop(): Promise<void> {
    await this.task.stop();
    await this.kv.delete(this.id).catch(() => undefined);
  }

  private async refresh(): Promise<void> {
    await this.kv.put(this.id, new Date().toISOString());
    const ids: string[] = [];
    for await (const k of await this.kv.keys()) ids.push(k);
    this.members = ids.sort();
  }

  /** The members as last seen (always including this process). */
  get list(): readonly string[] {
    return this.members.includes(this.id) ? this.members : [...this.members, this.id].sort();
  }

  mine(jobId: string): boolean {
    const list = this.list;
    return list.length <= 1 || list[shareOf(jobId, list.length)] === this.id;
  }
}
