import type { Decider } from './decider.js';
import type { AggregateRef, CommitMeta } from './envelope.js';
import { ConcurrencyError } from './errors.js';
import type { DomainEvent } from './events.js';
import type { EventStore } from './event-store.js';

export interface HandleResult<State, Event> {
  /** The events this command produced (those stored before, for a retried command id). */
  events: Event[];
  state: State;
  /** Stream sequence of the aggregate's last commit after the command. */
  seq: number;
  /** True when the command id had been handled before and nothing new was written. */
  duplicate: boolean;
}

export interface HandleOptions {
  /** Retries after a ConcurrencyError before giving up (default 5). */
  maxRetries?: number;
}

/**
 * load → decide → append, with optimistic concurrency: on a conflict the aggregate is reloaded and
 * the command decided again, a bounded number of times; then the ConcurrencyError surfaces (HTTP 409).
 * A command whose id is already in the aggregate's history returns that original result.
 */
export async function handleCommand<State, Command, Event extends DomainEvent>(
  store: EventStore,
  decider: Decider<State, Command, Event>,
  ref: AggregateRef,
  command: Command,
  meta: CommitMeta,
  opts: HandleOptions = {},
): Promise<HandleResult<State, Event>> {
  const maxRetries = opts.maxRetries ?? 5;
  for (let attempt = 0; ; attempt++) {
    const { commits, lastSeq } = await store.read(ref);
    let state = decider.initialState();
    let previous: { events: Event[]; seq: number } | undefined;
    for (const commit of commits) {
      const events = commit.events.map((e) => ({ type: e.type, data: e.data }) as Event);
      for (const e of events) state = decider.evolve(state, e);
      if (commit.meta.commandId === meta.commandId) previous = { events, seq: commit.seq };
    }
    if (previous) return { events: previous.events, state, seq: lastSeq, duplicate: true };
    const events = decider.decide(command, state);
    if (events.length === 0) return { events, state, seq: lastSeq, duplicate: false };
    try {
      const res = await store.append(ref, lastSeq, events, meta);
      const next = res.duplicate ? state : events.reduce(decider.evolve, state);
      return { events, state: next, seq: res.seq, duplicate: res.duplicate };
    } catch (err) {
      if (err instanceof ConcurrencyError && attempt < maxRetries) {
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
        continue;
      }
      throw err;
    }
  }
}
