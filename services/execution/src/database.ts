import type { Kysely } from 'kysely';
import type { ExecutionTables } from './migrations/index.js';

/** Injection token of the execution service's one typed database. */
export const EXECUTION_DB = Symbol('EXECUTION_DB');

/** The execution service's view of its database: its own tables only (typed, no cast). */
export function executionDb(db: Kysely<unknown>): Kysely<ExecutionTables> {
  return db.withTables<ExecutionTables>();
}
