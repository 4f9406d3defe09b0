import {
  ConcurrencyError,
  type AggregateRef,
  type CommitMeta,
  type Decider,
  type DomainEvent,
  type EventStore,
  type HandleResult,
} from '#libs/eventstore';

interface Cached<S, E> {
  state: S;
  lastSeq: number;
  /** The events of every stored command, by command id (a retried command gets its original result). */
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
  ) {}

  private key(ref: AggregateRef): string {
    return `${ref.workspaceId}/${ref.type}/${ref.id}`;
  }

  private async load(ref: AggregateRef, trustCache = false): Promise<Cached<S, E>> {
    const key = this.key(ref);
    const hit = this.cache.get(key);
    if (hit && trustCache) return hit;
    if (hit) {
      const last = await this.store.lastSequenceOf(ref);
      if (last === hit.lastSeq) {
        this.cache.delete(key);
        this.cache.set(key, hit); // most recently used last
        return hit;
      }
    }
    const { commits, lastSeq } = await this.store.read(ref);
    let state = this.decider.initialState();
    const byCommand = new Map<string, { events: E[]; seq: number }>();
    for (const c of commits) {
      const events = c.events.map((e) => ({ type: e.type, data: e.data }) as E);
      for (const e of events) state = this.decider.evolve(state, e);
      byCommand.set(c.meta.commandId, { events, seq: c.seq });
    }
    const fresh = { state, lastSeq, byCommand };
    this.cache.delete(key);
    this.cache.set(key, fresh);
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    return fresh;
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
          // Stored before by another process (the duplicate window caught it): read it back.
          this.cache.delete(this.key(ref));
          trust = false;
          continue;
        }
        agg.state = events.reduce(this.decider.evolve, agg.state);
        agg.lastSeq = res.seq;
        agg.byCommand.set(meta.commandId, { events, seq: res.seq });
        return { events, state: agg.state, seq: res.seq, duplicate: false };
      } catch (err) {
        this.cache.delete(this.key(ref));
        trust = false;
        if (err instanceof ConcurrencyError && attempt < maxRetries) {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
          continue;
        }
        throw err;
      }
    }
  }
}
