import type { Kysely, Transaction } from 'kysely';
import type { CheckpointTable } from './migrations.js';

/**
 * What a projection does with a commit it cannot decode or apply (docs/dead-letters.md):
 * `dead-letter` (default) records it and moves on; `halt` records it and stops there until the
 * commit applies (a fixed release) or the operator switches the projection to `dead-letter`.
 */
export type FailurePolicy = 'dead-letter' | 'halt';

/** A commit a projection could not decode or apply. */
export interface DeadLetter {
  projection: string;
  seq: number;
  subject: string;
  /** The commit's `Runway-Event-Types` header, when it has one. */
  eventTypes: string | null;
  error: string;
  /** The projection stopped at this commit (policy `halt`) instead of passing over it. */
  halted: boolean;
  failedAt: Date;
}

export interface DeadLetterSummary {
  projection: string;
  count: number;
  /** Commits the projection stopped at (policy halt) and has not passed yet. */
  halted: number;
  latest: DeadLetter[];
}

type Db = Kysely<CheckpointTable> | Transaction<CheckpointTable>;

/** Longest error message kept (a zod error on a big payload can be long). */
const MAX_ERROR_CHARS = 4000;

export function errorMessage(err: unknown): string {
  const msg =
    err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
  return msg.length > MAX_ERROR_CHARS ? `${msg.slice(0, MAX_ERROR_CHARS)}…` : msg;
}

/** SQLSTATE classes of errors that say nothing about the events: connection, rollback, resources, operator, system. */
const TRANSIENT_SQLSTATE = /^(08|40|53|57|58)/;
const TRANSIENT_NODE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/** node-postgres and pg-pool report a lost or impossible connection with these messages (no code). */
const TRANSIENT_MESSAGE =
  /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|Cannot use a pool after calling end|the database system is (starting up|shutting down)|terminating connection/i;

/**
 * True for an error that may not happen again on retry (the database is down or restarting, a
 * connection was reset, a serialization failure or deadlock): such an error is retried, never
 * dead-lettered. Everything else thrown while applying a commit is taken to be the commit's.
 */
export function isTransientError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    if ('code' in e && typeof e.code === 'string') {
      if (TRANSIENT_NODE_CODES.has(e.code)) return true;
      if (/^[0-9A-Z]{5}$/.test(e.code) && TRANSIENT_SQLSTATE.test(e.code)) return true;
    }
    if (TRANSIENT_MESSAGE.test(e.message)) return true;
    if (e instanceof AggregateError && e.errors.some((x) => isTransientError(x))) return true;
    e = e.cause;
  }
  return false;
}

/** Records dead letters (a repeat of the same commit replaces the earlier record). */
export async function recordDeadLetters(db: Db, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  await db
    .insertInto('projection_dead_letters')
    .values(
      letters.map((l) => ({
        projection: l.projection,
        stream_seq: l.seq,
        subject: l.subject,
        event_types: l.eventTypes,
        error: l.error,
        halted: l.halted,
        failed_at: l.failedAt,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['projection', 'stream_seq']).doUpdateSet((eb) => ({
        error: eb.ref('excluded.error'),
        halted: eb.ref('excluded.halted'),
        failed_at: eb.ref('excluded.failed_at'),
      })),
    )
    .execute();
}

function toDeadLetter(r: CheckpointTable['projection_dead_letters']): DeadLetter {
  return {
    projection: r.projection,
    seq: Number(r.stream_seq), // bigint: a string unless the int8 parser is installed
    subject: r.subject,
    eventTypes: r.event_types,
    error: r.error,
    halted: r.halted,
    failedAt: new Date(r.failed_at),
  };
}

/** Dead letters, newest first: of one projection, or of all. */
export async function listDeadLetters(
  db: Db,
  opts: { projection?: string; limit?: number; afterSeq?: number } = {},
): Promise<DeadLetter[]> {
  let q = db.selectFrom('projection_dead_letters').selectAll();
  if (opts.projection !== undefined) q = q.where('projection', '=', opts.projection);
  if (opts.afterSeq !== undefined) q = q.where('stream_seq', '>', opts.afterSeq);
  const rows = await q
    .orderBy('failed_at', 'desc')
    .orderBy('stream_seq', 'desc')
    .limit(opts.limit ?? 100)
    .execute();
  return rows.map(toDeadLetter);
}

/**
 * Per projection: how many commits it passed over, how many halts it has not passed yet (a halt
 * the checkpoint went past was resolved: a fixed release applied the commit), and the `latest`
 * newest records of either kind.
 */
export async function deadLetterSummary(
  db: Db,
  names: readonly string[],
  latest = 3,
): Promise<Map<string, DeadLetterSummary>> {
  const out = new Map<string, DeadLetterSummary>();
  for (const name of names) out.set(name, { projection: name, count: 0, halted: 0, latest: [] });
  if (names.length === 0) return out;
  const counts = await db
    .selectFrom('projection_dead_letters as d')
    .leftJoin('projection_checkpoints as c', 'c.name', 'd.projection')
    .select((eb) => [
      'd.projection',
      eb.fn.count<string>('d.stream_seq').filterWhere('d.halted', '=', false).as('count'),
      eb.fn
        .count<string>('d.stream_seq')
        .filterWhere((w) =>
          w.and([
            w('d.halted', '=', true),
            w.or([w('c.stream_seq', 'is', null), w('c.stream_seq', '<', w.ref('d.stream_seq'))]),
          ]),
        )
        .as('halted'),
    ])
    .where('d.projection', 'in', names)
    .groupBy('d.projection')
    .execute();
  for (const c of counts) {
    const s = out.get(c.projection);
    if (!s) continue;
    s.count = Number(c.count);
    s.halted = Number(c.halted);
    if (s.count + s.halted > 0)
      s.latest = await listDeadLetters(db, { projection: c.projection, limit: latest });
  }
  return out;
}
