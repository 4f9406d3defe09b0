import type { DomainEvent, EventDefinition, EventOf, StoredEvent } from '#libs/eventstore';

/**
 * A stored event typed by its definition: a union discriminated by `type`, so a `switch (e.type)`
 * narrows `e.data` to that event's payload.
 */
export type TypedStoredEvent<E extends DomainEvent> = E extends DomainEvent
  ? Omit<StoredEvent, 'type' | 'data'> & { type: E['type']; data: E['data'] }
  : never;

/** The events a projection (or reactor) reads, by their definitions. */
export interface EventSelection<Defs extends readonly EventDefinition[]> {
  /** Their type names: a projection's `canHandle`, a reactor's `eventTypes`. */
  readonly types: readonly Defs[number]['type'][];
  /** True when the event is one of them (its payload is then typed by its definition). */
  is(event: StoredEvent): event is TypedStoredEvent<EventOf<Defs>>;
  /** The events that are one of them, typed, in order. */
  select(events: readonly StoredEvent[]): TypedStoredEvent<EventOf<Defs>>[];
}

/**
 * Typed folding without casts: `const handled = eventsOf(RunStarting, RunCompleted)`, then
 * `canHandle: handled.types` and in `apply`: `for (const e of handled.select(events)) switch (e.type) {…}`.
 * Sound because the runner's events were decoded by the store's registry: each payload was upcast
 * and validated against the schema registered for its type name, the same definitions as these.
 */
export function eventsOf<const Defs extends readonly EventDefinition[]>(...defs: Defs): EventSelection<Defs> {
  const types: Defs[number]['type'][] = defs.map((d) => d.type);
  const known = new Set<string>(types);
  const is = (event: StoredEvent): event is TypedStoredEvent<EventOf<Defs>> => known.has(event.type);
  return { types, is, select: (events) => events.filter(is) };
}
