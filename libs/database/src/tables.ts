import type { Kysely, Transaction } from 'kysely';

/**
 * A service's table types as kysely's `withTables` wants them: a type literal (an `interface` has
 * no implicit index signature; this mapped copy of it has, and is the same type to kysely).
 */
export type TableTypes<DB> = { [K in keyof DB]: DB[K] };

/** What a database interface is: tables (by name) of rows (objects). */
export type TablesShape<DB> = { [K in keyof DB]: object };

/**
 * The untyped connection (ServiceContext.db, a CLI's pool) seen with a service's own tables: the
 * one place a service obtains its typed database, without a cast. Same pool, types only.
 */
export function withTables<DB extends TablesShape<DB>>(db: Kysely<unknown>): Kysely<DB> {
  return db.withTables<TableTypes<DB>>();
}

/** The same for a transaction of the untyped connection. */
export function transactionWithTables<DB extends TablesShape<DB>>(tx: Transaction<unknown>): Transaction<DB> {
  return tx.withTables<TableTypes<DB>>();
}
