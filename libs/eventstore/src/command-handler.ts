import type { Decider } from './decider.js';
import type { AggregateRef, CommitMeta, StoredCommit } from './envelope.js';
import { ConcurrencyError } from './errors.js';
import type { DomainEvent } from './events.js';
import type { EventStore } from './event-store.js';
import { KeyedLock } from './keyed-lock.js';

export interface HandleResult<State, Event> {
  /** The events this command produced (those stored before, for a retried command id). */
  events: Event[];
  state: State;
  /** Stream sequence of the aggregate's last commit after the command. */
  seq: number;
  /** True when the command id had been handled before and nothing new was written. */
  duplicate: boolean;
}

/** A folded state as of a stream sequence (the aggregate's last commit folded into it). */
export interface StateAt<S> {
  state: S;
  lastSeq: number;
}

/**
 * Persisted states of an aggregate (e.g. a table of snapshots): a cold load starts from the
 * snapshot and reads only the commits after it. Snapshots are an optimisation: a failing save is
 * ignored, and a snapshot whose sequence the stream does not confirm is dropped on the first conflict.
 */
export interface SnapshotStore<S> {
  load(ref: AggregateRef): Promise<StateAt<S> | undefined>;
  save(ref: AggregateRef, state: S, lastSeq: number): Promise<void>;
  /**
   * Save after this many commits of this handler since the last snapshot of the aggregate. Unset:
   * the handler saves nothing by itself; the owner saves in bulk (changedSinceSnapshot, markSnapshotted).
   */
  everyCommits?: number;
}

export interface CommandHandlerOptions<S> {
  /** Retries after a ConcurrencyError before it surfaces (HTTP 409). Default 5. */
  maxRetries?: number;
  /**
   * Keep folded states in memory (aggregates with long streams: a job holds one commit per run
   * request). A command then checks with one direct get that nobody wrote since; without it every
   * command reads the aggregate.
   */
  cache?: {
    /** Most aggregates kept (the least recently used are dropped). Default 10,000. */
    maxEntries?: number;
    /** Most command results remembered per aggregate (older retries: the stream's duplicate window). Default 1,000. */
    maxCommands?: number;
  };
  snapshots?: SnapshotStore<S>;
}

export interface HandleCallOptions {
  /**
   * Decide on the cached state without the direct get first: an append is checked by its expected
   * sequence anyway, and a decision of no events is confirmed against a fresh state. For hot
   * commands that mostly append (scheduled fires). Without a cache it changes nothing.
   */
  optimistic?: boolean;
}

interface Entry<S, E> {
  ref: AggregateRef;
  state: S;
  lastSeq: number;
  /** lastSeq of the last snapshot of it (0: none). */
  snapshotSeq: number;
  /** Commits folded since the last snapshot. */
  sinceSnapshot: number;
  /** The latest commands' results by command id (all of them for an entry read for one command). */
  byCommand: Map<string, { events: E[]; seq: number }>;
}

const keyOf = (ref: AggregateRef): string => `${ref.workspaceId}/${ref.type}/${ref.id}`;
const backoff = (attempt: number) => new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));

/**
 * The one command handler: load (cached state, or snapshot + the commits after it, or the whole
 * stream) → decide → append with the expected sequence. Commands on one aggregate are serialized in
 * this process; another process is caught by the expected-sequence check, and the command is
 * decided again on the caught-up state (a bounded number of times, with one backoff). A command
 * whose id is already in the aggregate's history (remembered, or named by the stream's duplicate
 * window) returns its original result with `duplicate: true`.
 */
export class CommandHandler<S, C, E extends DomainEvent> {
  private readonly lock = new KeyedLock();
  private readonly cache = new Map<string, Entry<S, E>>();
  private readonly cached: boolean;
  private readonly maxEntries: number;
  private readonly maxCommands: number;
  private readonly maxRetries: number;
  private readonly snapshots: SnapshotStore<S> | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly decider: Decider<S, C, E>,
    opts: CommandHandlerOptions<S> = {},
  ) {
    this.cached = opts.cache !== undefined;
    this.maxEntries = opts.cache?.maxEntries ?? 10_000;
    this.maxCommands = opts.cache?.maxCommands ?? 1_000;
    this.maxRetries = opts.maxRetries ?? 5;
    this.snapshots = opts.snapshots;
  }

  handle(
    ref: AggregateRef,
    command: C,
    meta: CommitMeta,
    opts: HandleCallOptions = {},
  ): Promise<HandleResult<S, E>> {
    return this.lock.run(keyOf(ref), () =>
      this.decideAndAppend(ref, command, meta, opts.optimistic === true),
    );
  }

  /** Current state (cached or loaded) without deciding anything. */
  load(ref: AggregateRef): Promise<{ state: S; seq: number }> {
    return this.lock.run(keyOf(ref), async () => {
      const e = await this.entryOf(ref, false);
      return { state: e.state, seq: e.lastSeq };
    });
  }

  /** The aggregate's state in memory as it is (not caught up with the stream), undefined: not cached. */
  peek(ref: AggregateRef): S | undefined {
    return this.cache.get(keyOf(ref))?.state;
  }

  /** Whether the aggregate's state is in memory. */
  has(ref: AggregateRef): boolean {
    return this.cache.has(keyOf(ref));
  }

  /** Reads the aggregate into memory unless it is there. */
  warm(ref: AggregateRef): Promise<void> {
    return this.lock.run(keyOf(ref), async () => {
      if (!this.cache.has(keyOf(ref))) await this.entryOf(ref, false);
    });
  }

  /**
   * Starts from a snapshot read in bulk by the owner and catches up with the commits after it.
   * Nothing happens when the aggregate is in memory already.
   */
  warmFrom(snapshot: { ref: AggregateRef } & StateAt<S>): Promise<void> {
    const key = keyOf(snapshot.ref);
    return this.lock.run(key, async () => {
      if (this.cache.has(key)) return;
      const e = this.newEntry(snapshot.ref, snapshot);
      await this.catchUp(e);
      this.remember(key, e);
    });
  }

  /**
   * Fills the cache from commits read in bulk (one replay of many aggregates' streams, in order),
   * for the aggregates `wanted` says yes to that are not cached yet. `start` entries (snapshots) are
   * continued with the commits after their sequence; with `onlyStarted` (the replay begins after
   * some aggregates' first commits) aggregates without a start entry are left out. A command that
   * ran meanwhile keeps its newer entry; an entry older than the stream is caught by the expected
   * sequence of its next append, like any stale entry. Returns how many aggregates were cached.
   */
  async prime(
    commits: AsyncIterable<StoredCommit>,
    wanted: (ref: AggregateRef) => boolean,
    start: readonly ({ ref: AggregateRef } & StateAt<S>)[] = [],
    onlyStarted = false,
  ): Promise<number> {
    if (!this.cached) return 0;
    const loaded = new Map<string, Entry<S, E>>();
    for (const st of start) {
      const key = keyOf(st.ref);
      if (this.cache.has(key) || !wanted(st.ref)) continue;
      loaded.set(key, this.newEntry(st.ref, st));
    }
    for await (const c of commits) {
      const key = keyOf(c.aggregate);
      let e = loaded.get(key);
      if (!e) {
        if (onlyStarted || this.cache.has(key) || !wanted(c.aggregate)) continue;
        e = this.newEntry(c.aggregate);
        loaded.set(key, e);
      }
      if (c.seq > e.lastSeq) this.fold(e, [c]);
    }
    let n = 0;
    for (const [key, e] of loaded) {
      if (this.cache.has(key) || this.cache.size >= this.maxEntries) continue;
      this.cache.set(key, e);
      n++;
    }
    return n;
  }

  /** The cached aggregates whose state moved since their last snapshot (bulk snapshot writers). */
  changedSinceSnapshot(): ({ ref: AggregateRef } & StateAt<S>)[] {
    const out: ({ ref: AggregateRef } & StateAt<S>)[] = [];
    for (const e of this.cache.values())
      if (e.lastSeq > e.snapshotSeq) out.push({ ref: e.ref, state: e.state, lastSeq: e.lastSeq });
    return out;
  }

  /** Records snapshots written in bulk by the owner. */
  markSnapshotted(written: readonly { ref: AggregateRef; lastSeq: number }[]): void {
    for (const w of written) {
      const e = this.cache.get(keyOf(w.ref));
      if (e && e.snapshotSeq < w.lastSeq) {
        e.snapshotSeq = w.lastSeq;
        e.sinceSnapshot = 0;
      }
    }
  }

  private async decideAndAppend(
    ref: AggregateRef,
    command: C,
    meta: CommitMeta,
    optimistic: boolean,
  ): Promise<HandleResult<S, E>> {
    const key = keyOf(ref);
    let trust = optimistic;
    let fromSnapshot = true;
    for (let attempt = 0; ; attempt++) {
      const e = await this.entryOf(ref, trust, fromSnapshot);
      const previous = e.byCommand.get(meta.commandId);
      if (previous) return { events: previous.events, state: e.state, seq: e.lastSeq, duplicate: true };
      const events = this.decider.decide(command, e.state);
      if (events.length === 0) {
        if (trust && this.cache.has(key)) {
          trust = false; // confirm "nothing to do" against what is stored
          continue;
        }
        return { events, state: e.state, seq: e.lastSeq, duplicate: false };
      }
      try {
        const res = await this.store.append(ref, e.lastSeq, events, meta);
        if (res.duplicate) return await this.original(e, res.seq, meta.commandId);
        e.state = events.reduce(this.decider.evolve, e.state);
        e.lastSeq = res.seq;
        e.sinceSnapshot++;
        this.rememberCommand(e, meta.commandId, { events, seq: res.seq });
        await this.maybeSnapshot(e);
        return { events, state: e.state, seq: res.seq, duplicate: false };
      } catch (err) {
        trust = false;
        // A first conflict: somebody else wrote, the entry catches up with the commits after it.
        // Another one (or anything else: the outcome is unknown): the aggregate is read afresh,
        // from the start of its stream (a snapshot the stream does not confirm is not used again).
        if (!(err instanceof ConcurrencyError) || attempt > 0) {
          this.cache.delete(key);
          fromSnapshot = attempt === 0;
        }
        if (err instanceof ConcurrencyError && attempt < this.maxRetries) {
          await backoff(attempt);
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * The command was stored before (by another process, or by a call that timed out): the server
   * named the original commit; answer with it and catch the state up to the stream.
   */
  private async original(e: Entry<S, E>, seq: number, commandId: string): Promise<HandleResult<S, E>> {
    const original = await this.store.readCommit(seq);
    if (!original || original.meta.commandId !== commandId)
      throw new Error(`command ${commandId}: the stored original (${seq}) could not be read`);
    await this.catchUp(e);
    const events = original.events.map((ev) => ({ type: ev.type, data: ev.data }) as E);
    return { events, state: e.state, seq, duplicate: true };
  }

  private newEntry(ref: AggregateRef, from?: StateAt<S>): Entry<S, E> {
    return {
      ref: { workspaceId: ref.workspaceId, type: ref.type, id: ref.id },
      state: from?.state ?? this.decider.initialState(),
      lastSeq: from?.lastSeq ?? 0,
      snapshotSeq: from?.lastSeq ?? 0,
      sinceSnapshot: 0,
      byCommand: new Map(),
    };
  }

  /**
   * The aggregate's entry, up to date with the stream: the cached one (trusted as it is, or caught
   * up with one direct get), else from its snapshot, else from the start of its stream.
   */
  private async entryOf(ref: AggregateRef, trust: boolean, fromSnapshot = true): Promise<Entry<S, E>> {
    const key = keyOf(ref);
    const hit = this.cache.get(key);
    if (hit) {
      if (!trust) await this.catchUp(hit);
      this.remember(key, hit);
      return hit;
    }
    const snap = this.snapshots && fromSnapshot ? await this.snapshots.load(ref) : undefined;
    const fresh = this.newEntry(ref, snap);
    await this.catchUp(fresh);
    if (this.cached) this.remember(key, fresh);
    return fresh;
  }

  /** Folds the commits after the entry's lastSeq: one direct get when few, else a read from there. */
  private async catchUp(e: Entry<S, E>): Promise<void> {
    const after =
      e.lastSeq > 0
        ? ((await this.store.readAfter(e.ref, e.lastSeq)) ?? (await this.store.read(e.ref, e.lastSeq)))
        : await this.store.read(e.ref);
    this.fold(e, after.commits);
  }

  private fold(e: Entry<S, E>, commits: readonly StoredCommit[]): void {
    for (const c of commits) {
      const events = c.events.map((ev) => ({ type: ev.type, data: ev.data }) as E);
      for (const ev of events) e.state = this.decider.evolve(e.state, ev);
      this.rememberCommand(e, c.meta.commandId, { events, seq: c.seq });
      e.lastSeq = c.seq;
      e.sinceSnapshot++;
    }
  }

  private rememberCommand(e: Entry<S, E>, commandId: string, result: { events: E[]; seq: number }): void {
    e.byCommand.delete(commandId);
    e.byCommand.set(commandId, result);
    // An entry read for one command knows its whole history; a cached one the latest maxCommands.
    if (!this.cached) return;
    while (e.byCommand.size > this.maxCommands) e.byCommand.delete(e.byCommand.keys().next().value!);
  }

  private remember(key: string, e: Entry<S, E>): void {
    if (!this.cached) return;
    this.cache.delete(key);
    this.cache.set(key, e); // most recently used last
    while (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
  }

  private async maybeSnapshot(e: Entry<S, E>): Promise<void> {
    const every = this.snapshots?.everyCommits;
    if (!this.snapshots || !every || e.sinceSnapshot < every) return;
    try {
      await this.snapshots.save(e.ref, e.state, e.lastSeq);
      e.snapshotSeq = e.lastSeq;
      e.sinceSnapshot = 0;
    } catch {
      // An optimisation only: the next commits try again.
    }
  }
}
