import pg from 'pg';

/** The two-int advisory key space's first half for projection leadership (apart from the batches' bigint locks). */
const LEADER_CLASS = 0x52_57_50_4c; // "RWPL"

/** A stable 32-bit key per projection name (FNV-1a), the second half of its leadership lock. */
export function leaderKey(name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `leader:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h | 0;
}

/**
 * Leadership of projections across the replicas of a service: a session-level PostgreSQL advisory
 * lock per projection, on ONE connection of this process kept for that purpose (outside the
 * pool, which would hand a locked session to other queries and close idle ones). The replica that
 * holds a projection's lock is its only active consumer; the others stand by.
 *
 * The lock goes when its session goes: a process that dies (SIGKILL, a crash, its host gone)
 * closes its connection and PostgreSQL releases the lock at once, so a standby takes over at its
 * next try (`tryAcquire`, every half second). A connection that this process loses (the database
 * restarted, a network cut) loses every lock with it: `check` notices (the query fails, or the
 * backend pid changed) and `holds` is false until it is acquired again. Each batch transaction
 * still takes the projection's transaction lock and checks the checkpoint, so even a moment with
 * two active replicas (the old one not yet aware it lost its lock) applies each commit once.
 */
export class ProjectionLocks {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private backendPid: number | undefined;
  private readonly held = new Set<string>();
  /** One statement at a time on the connection. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  holds(name: string): boolean {
    return this.held.has(name);
  }

  /** True when this process holds (or just took) the lock of projection `name`. */
  tryAcquire(name: string): Promise<boolean> {
    return this.serial(async () => {
      if (this.held.has(name)) return true;
      const c = await this.connection();
      const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [
        LEADER_CLASS,
        leaderKey(name),
      ]);
      if (r.rows[0]?.ok === true) this.held.add(name);
      return this.held.has(name);
    });
  }

  /** Gives the lock of `name` up (a clean stop: a standby takes over at its next try). */
  release(name: string): Promise<void> {
    return this.serial(async () => {
      if (!this.held.delete(name) || !this.client) return;
      await this.client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [LEADER_CLASS, leaderKey(name)]);
    });
  }

  /** Checks that the session holding the locks is still there; if not, every lock is lost. */
  check(): Promise<void> {
    return this.serial(async () => {
      if (!this.client || this.held.size === 0) return;
      const r = await this.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      if (r.rows[0]?.pid !== this.backendPid) this.lost(new Error('the leadership session changed'));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue.catch(() => undefined);
    this.held.clear();
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  /** Ends the session abruptly from another one, as the server does when a process dies (tests). */
  async kill(): Promise<void> {
    const pid = this.backendPid;
    const other = new pg.Client({ connectionString: this.url });
    await other.connect();
    try {
      await other.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await other.end();
    }
    this.lost(new Error('killed'));
  }

  private lost(err: unknown): void {
    if (this.held.size > 0) this.onError(err);
    this.held.clear();
    const c = this.client;
    this.client = undefined;
    this.backendPid = undefined;
    void c?.end().catch(() => undefined);
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.closed) throw new Error('projection locks closed');
      try {
        return await f();
      } catch (err) {
        this.lost(err);
        throw err;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    this.connecting ??= (async () => {
      const c = new pg.Client({ connectionString: this.url, keepAlive: true });
      c.on('error', (err) => {
        if (this.client === c) this.lost(err);
      });
      await c.connect();
      const r = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this.backendPid = r.rows[0]?.pid;
      this.client = c;
      return c;
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }
}
