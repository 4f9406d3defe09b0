import type { QueryCreator } from 'kysely';
import type { StoredEvent } from '#libs/eventstore';
import type { FailurePolicy } from './dead-letters.js';

/**
 * A projection folds events into its own tables and nothing else.
 * `apply` receives a batch (one transaction); the query creator is bound to the schema it must
 * write (the live one, or a rebuild schema), so it must not qualify table names itself.
 */
export interface Projection<DB = unknown> {
  name: string;
  /** The tables it owns; a rebuild recreates and swaps all of them. */
  tables: readonly string[];
  /** The event types it reads; others only advance the checkpoint. */
  canHandle: readonly string[];
  apply: (db: QueryCreator<DB>, events: readonly StoredEvent[]) => Promise<void>;
  /**
   * A commit it cannot decode or apply: recorded as a dead letter and passed over (default), or
   * recorded and the projection stops there (`halt`), for a read model that must never miss an
   * event. `RUNWAY_PROJECTIONS_HALT_ON_ERROR` overrides it per deployment (docs/dead-letters.md).
   */
  onFailure?: FailurePolicy;
}

/** Checks the name and erases the table types, so runners can hold projections of any service. */
export function defineProjection<DB>(p: Projection<DB>): Projection<unknown> {
  if (!/^[a-z][a-z0-9_]*$/.test(p.name)) throw new Error(`projection name ${p.name} must be [a-z0-9_]`);
  return p as unknown as Projection<unknown>;
}
