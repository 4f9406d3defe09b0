/**
 * Serializes async work per key inside one process: commands on one aggregate queue here instead
 * of racing for the same stream sequence and burning their optimistic-concurrency retries. Across
 * processes the event store's expected-sequence check still decides. A failed task does not stop
 * the ones queued behind it.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
