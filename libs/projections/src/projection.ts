import type { QueryCreator, Transaction } from 'kysely';
import { transactionWithTables, type TablesShape } from '#libs/database';
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

/**
 * A projection as runners hold it, whatever its tables: `applyIn` gets the runner's transaction on
 * the untyped connection and the schema to write, and gives the projection its typed view of them.
 */
export interface RunnableProjection {
  readonly name: string;
  readonly tables: readonly string[];
  readonly canHandle: readonly string[];
  readonly onFailure?: FailurePolicy;
  applyIn(tx: Transaction<unknown>, schema: string, events: readonly StoredEvent[]): Promise<void>;
}

/** Checks the name and closes over the table types, so runners can hold projections of any service. */
export function defineProjection<DB extends TablesShape<DB>>(p: Projection<DB>): RunnableProjection {
  if (!/^[a-z][a-z0-9_]*$/.test(p.name)) throw new Error(`projection name ${p.name} must be [a-z0-9_]`);
  return {
    name: p.name,
    tables: p.tables,
    canHandle: p.canHandle,
    ...(p.onFailure !== undefined ? { onFailure: p.onFailure } : {}),
    applyIn: (tx, schema, events) => p.apply(transactionWithTables<DB>(tx).withSchema(schema), events),
  };
}
