import type { Kysely } from 'kysely';
import type { NatsConnection } from '#libs/nats';
import type { CheckpointTable } from './migrations.js';

/**
 * Core NATS subject a runner announces each committed checkpoint on (`<prefix>.projection.checkpoint.<name>`,
 * payload: the stream sequence). Not captured by any stream: a hint, never the truth.
 */
export function checkpointSubject(prefix: string, name: string): string {
  return `${prefix}projection.checkpoint.${name}`;
}

interface Waiter {
  name: string;
  seq: number;
  resolve: () => void;
}

/**
 * Read-your-writes across processes: resolves once projection `name` (run by whichever service,
 * in whichever process) has committed stream sequence `seq`. It listens to the runners'
 * checkpoint announcements (sub-millisecond) and, since an announcement can be missed (a
 * reconnect, a runner of another version), also reads `projection_checkpoints` now and then.
 */
export class CheckpointWatcher {
  private readonly known = new Map<string, number>();
  private readonly waiters = new Set<Waiter>();
  private subscribed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly db: Kysely<CheckpointTable>,
    /** The event store's subject prefix (with its trailing dot, or ""). */
    private readonly prefix: string,
    private readonly pollMs = 100,
  ) {}

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    const start = checkpointSubject(this.prefix, '');
    this.nc.subscribe(`${start}*`, {
      callback: (err, msg) => {
        if (err) return;
        const seq = Number(msg.string());
        if (Number.isSafeInteger(seq)) this.seen(msg.subject.slice(start.length), seq);
      },
    });
  }

  private seen(name: string, seq: number): void {
    if (seq <= (this.known.get(name) ?? 0)) return;
    this.known.set(name, seq);
    for (const w of this.waiters) {
      if (w.name === name && seq >= w.seq) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  private async read(name: string): Promise<void> {
    const row = await this.db
      .selectFrom('projection_checkpoints')
      .select('stream_seq')
      .where('name', '=', name)
      .executeTakeFirst();
    this.seen(name, Number(row?.stream_seq ?? 0));
  }

  async waitFor(name: string, seq: number, timeoutMs = 10_000): Promise<void> {
    this.subscribe();
    if ((this.known.get(name) ?? 0) >= seq) return;
    let done = false;
    let waiter: Waiter | undefined;
    const reached = new Promise<void>((resolve) => {
      waiter = { name, seq, resolve: () => ((done = true), resolve()) };
      this.waiters.add(waiter);
    });
    const until = Date.now() + timeoutMs;
    try {
      await this.read(name);
      while (!done) {
        if (Date.now() > until)
          throw new Error(
            `projection ${name} did not reach ${seq} within ${timeoutMs} ms (at ${this.known.get(name) ?? 0})`,
          );
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([reached, new Promise<void>((r) => (timer = setTimeout(r, this.pollMs)))]);
        clearTimeout(timer);
        if (!done) await this.read(name);
      }
    } finally {
      if (waiter) this.waiters.delete(waiter);
    }
  }
}
