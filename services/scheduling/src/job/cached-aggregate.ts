import {
  ConcurrencyError,
  type AggregateRef,
  type CommitMeta,
  type Decider,
  type DomainEvent,
  type EventStore,
  type HandleResult,
  type StoredCommit,
} from '#libs/eventstore';

interface Cached<S, E> {
  ref: AggregateRef;
  state: S;
  lastSeq: number;
  /** The lastSeq of the last snapshot written of it (0: none). */
  snapshotSeq: number;
  /**
   * The events of the latest stored commands (at most maxCommands), by command id: a retried
   * command gets its original result. An older retry within the stream's duplicate window is
   * answered from the stored commit the server names; beyond both it is decided again (a fire
   * time at or before the job's last one decides nothing).
   */
  byCommand: Map<string, { events: E[]; seq: number }>;
}

/**
 * load → decide → append like handleCommand, for aggregates that grow long (a job's stream holds
 * one commit per run request): the folded state stays in memory, and a command only checks with
 * one direct get that nobody wrote since (the full read happens when someone did). Callers must
 * serialize commands per aggregate in this process (KeyedLock); other processes are caught by the
 * expected-sequence check.
 */
export class CachedAggregates<S, C, E extends DomainEvent> {
  private readonly cache = new Map<string, Cached<S, E>>();

  constructor(
    private readonly store: EventStore,
    private readonly decider: Decider<S, C, E>,
    /** Most aggregates kept in memory (least recently used are dropped). */
    private readonly maxEntries = 10_000,
    /** Most command results remembered per aggregate (a job fires every few seconds for years). */
    private readonly maxCommands = 1_000,
  ) {}

  private key(ref: AggregateRef): string {
    return `${ref.workspaceId}/${ref.type}/${ref.id}`;
  }

  /** An entry with no commits folded yet, or one starting from a snapshot (state as of lastSeq). */
  private entry(ref: AggregateRef, from?: { state: S; lastSeq: number }): Cached<S, E> {
    return {
      ref,
      state: from?.state ?? this.decider.initialState(),
      lastSeq: from?.lastSeq ?? 0,
      snapshotSeq: from?.lastSeq ?? 0,
      byCommand: new Map(),
    };
  }

  private fold(agg: Cached<S, E>, commits: readonly StoredCommit[]): void {
    for (const c of commits) {
      const events = c.events.map((e) => ({ type: e.type, data: e.data }) as E);
      for (const e of events) agg.state = this.decider.evolve(agg.state, e);
      this.rememberCommand(agg, c.meta.commandId, { events, seq: c.seq });
      agg.lastSeq = c.seq;
    }
  }

  private rememberCommand(agg: Cached<S, E>, commandId: string, result: { events: E[]; seq: number }): void {
    agg.byCommand.delete(commandId);
    agg.byCommand.set(commandId, result);
    while (agg.byCommand.size > this.maxCommands) agg.byCommand.delete(agg.byCommand.keys().next().value!);
  }

  private remember(key: string, agg: Cached<S, E>): void {
    this.cache.delete(key);
    this.cache.set(key, agg); // most recently used last
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
  }

  private async load(ref: AggregateRef, trustCache = false): Promise<Cached<S, E>> {
    const key = this.key(ref);
    const hit = this.cache.get(key);
    if (hit && trustCache) return hit;
    if (hit) {
      // A cached state a few commits behind (another replica wrote) catches up with direct gets.
      const after = await this.store.readAfter(ref, hit.lastSeq);
      if (after) {
        this.fold(hit, after.commits);
        this.remember(key, hit);
        return hit;
      }
    }
    const { commits, lastSeq } = await this.store.read(ref);
    const fresh = this.entry(ref);
    this.fold(fresh, commits);
    fresh.lastSeq = lastSeq;
    this.remember(key, fresh);
    return fresh;
  }

  /** Whether the aggregate is in memory. */
  has(ref: AggregateRef): boolean {
    return this.cache.has(this.key(ref));
  }

  /** Reads the aggregate into memory unless it is there (callers serialize per aggregate, as for handle). */
  async warm(ref: AggregateRef): Promise<void> {
    if (!this.cache.has(this.key(ref))) await this.load(ref);
  }

  /**
   * Starts from a snapshot (a state as of a sequence) and catches up with the commits after it
   * (callers serialize per aggregate). Nothing happens when the aggregate is in memory already.
   */
  async warmFrom(snapshot: { ref: AggregateRef; state: S; lastSeq: number }): Promise<void> {
    const key = this.key(snapshot.ref);
    if (this.cache.has(key)) return;
    this.remember(key, this.entry(snapshot.ref, snapshot));
    await this.load(snapshot.ref);
  }

  /**
   * Fills the cache from commits read in bulk (one replay of many aggregates' streams, in order),
   * for the aggregates `wanted` says yes to that are not cached yet. `start` entries (snapshots:
   * a state as of a sequence) are continued with the commits after their sequence; with
   * `onlyStarted` (the replay begins after some aggregates' first commits) aggregates without a
   * start entry are left out. A command that ran meanwhile keeps its newer entry; an entry older
   * than the stream is caught by the expected sequence of the next append, like any stale entry.
   * Returns how many aggregates were cached.
   */
  async prime(
    commits: AsyncIterable<StoredCommit>,
    wanted: (ref: AggregateRef) => boolean,
    start: readonly { ref: AggregateRef; state: S; lastSeq: number }[] = [],
    onlyStarted = false,
  ): Promise<number> {
    const loaded = new Map<string, Cached<S, E>>();
    for (const st of start) {
      const key = this.key(st.ref);
      if (this.cache.has(key) || !wanted(st.ref)) continue;
      loaded.set(key, this.entry(st.ref, st));
    }
    for await (const c of commits) {
      const key = this.key(c.aggregate);
      let agg = loaded.get(key);
      if (!agg) {
        if (onlyStarted || this.cache.has(key) || !wanted(c.aggregate)) continue;
        agg = this.entry(c.aggregate);
        loaded.set(key, agg);
      }
      if (c.seq > agg.lastSeq) this.fold(agg, [c]);
    }
    let n = 0;
    for (const [key, agg] of loaded) {
      if (this.cache.has(key) || this.cache.size >= this.maxEntries) continue;
      this.cache.set(key, agg);
      n++;
    }
    return n;
  }

  /** The cached aggregates whose state moved since their last snapshot (see markSnapshotted). */
  changedSinceSnapshot(): { ref: AggregateRef; state: S; lastSeq: number }[] {
    const out: { ref: AggregateRef; state: S; lastSeq: number }[] = [];
    for (const agg of this.cache.values())
      if (agg.lastSeq > agg.snapshotSeq) out.push({ ref: agg.ref, state: agg.state, lastSeq: agg.lastSeq });
    return out;
  }

  markSnapshotted(written: readonly { ref: AggregateRef; lastSeq: number }[]): void {
    for (const w of written) {
      const agg = this.cache.get(this.key(w.ref));
      if (agg && agg.snapshotSeq < w.lastSeq) agg.snapshotSeq = w.lastSeq;
    }
  }

  async handle(
    ref: AggregateRef,
    command: C,
    meta: CommitMeta,
    maxRetries = 50,
    /**
     * Decide on the cached state without the direct get first: an append is checked by its
     * expected sequence anyway, and a decision of no events is confirmed against a fresh state.
     * For hot commands (scheduled fires) that mostly append.
     */
    optimistic = false,
  ): Promise<HandleResult<S, E>> {
    let trust = optimistic;
    for (let attempt = 0; ; attempt++) {
      const agg = await this.load(ref, trust);
      const previous = agg.byCommand.get(meta.commandId);
      if (previous) return { events: previous.events, state: agg.state, seq: agg.lastSeq, duplicate: true };
      const events = this.decider.decide(command, agg.state);
      if (events.length === 0) {
        if (trust && this.cache.has(this.key(ref))) {
          trust = false; // confirm "nothing to do" against what is stored
          continue;
        }
        return { events, state: agg.state, seq: agg.lastSeq, duplicate: false };
      }
      try {
        const res = await this.store.append(ref, agg.lastSeq, events, meta);
        if (res.duplicate) {
          // Stored before (by another process, or by a call that timed out): the server names the
          // original commit; answer with it, and catch the cached state up to the stream.
          const original = await this.store.readCommit(res.seq);
          if (!original || original.meta.commandId !== meta.commandId)
            throw new Error(`command ${meta.commandId}: the stored original (${res.seq}) could not be read`);
          const after = await this.store.readAfter(ref, agg.lastSeq);
          if (after) this.fold(agg, after.commits);
          else this.cache.delete(this.key(ref));
          const stored = original.events.map((e) => ({ type: e.type, data: e.data }) as E);
          return { events: stored, state: agg.state, seq: res.seq, duplicate: true };
        }
        agg.state = events.reduce(this.decider.evolve, agg.state);
        agg.lastSeq = res.seq;
        this.rememberCommand(agg, meta.commandId, { events, seq: res.seq });
        return { events, state: agg.state, seq: res.seq, duplicate: false };
      } catch (err) {
        trust = false;
        // Somebody else wrote (the entry catches up at the next load); after anything else the
        // outcome is unknown: read it whole.
        if (!(err instanceof ConcurrencyError)) this.cache.delete(this.key(ref));
        if (err instanceof ConcurrencyError && attempt < maxRetries) {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
          continue;
        }
        throw err;
      }
    }
  }
}
