import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';

// BIGINT (int8) columns carry stream sequences and counts well below 2^53: parse them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

export interface DatabaseOptions {
  url: string;
  /** Pool size (default 10). */
  max?: number;
  /** Postgres schema used for unqualified table names (default public). */
  schema?: string;
}

export function createKysely<DB>(opts: DatabaseOptions): Kysely<DB> {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 10,
    ...(opts.schema ? { options: `-c search_path=${opts.schema},public` } : {}),
  });
  pool.on('error', () => undefined); // idle-client errors (server restart) are retried on next use
  // A connection lost while checked out (the server restarted or ended the backend) also emits
  // 'error' on its client, besides failing the query in flight: without a listener that event
  // would crash the process instead of failing one transaction, to be retried.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/** Whether the database answers (readiness probes): undefined when it does, the reason otherwise. */
export async function databaseUnreachable(db: Kysely<unknown>): Promise<string | undefined> {
  try {
    await sql`select 1`.execute(db);
    return undefined;
  } catch (err) {
    return `PostgreSQL unreachable: ${err instanceof Error ? err.message : String(err)}`;
  }
}
