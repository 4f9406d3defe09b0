/**
 * Failed attempts by key (sign-in: email + client address): after `max` failures within
 * `windowMs`, the key is refused until the oldest of them leaves the window. A success clears
 * the key. In memory, per gateway process.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly max: number,
    readonly windowMs: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** 0 when the key may try now, else the seconds until it may. */
  wait(key: string, now = Date.now()): number {
    const recent = this.recent(key, now);
    if (recent.length < this.max) return 0;
    return Math.max(1, Math.ceil((recent[recent.length - this.max]! + this.windowMs - now) / 1000));
  }

  fail(key: string, now = Date.now()): void {
    if (!this.failures.has(key) && this.failures.size >= this.maxKeys) this.prune(now);
    this.failures.set(key, [...this.recent(key, now), now]);
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }

  private recent(key: string, now: number): number[] {
    return (this.failures.get(key) ?? []).filter((t) => t > now - this.windowMs);
  }

  private prune(now: number): void {
    for (const key of [...this.failures.keys()])
      if (this.recent(key, now).length === 0) this.failures.delete(key);
    if (this.failures.size >= this.maxKeys) this.failures.clear();
  }
}
